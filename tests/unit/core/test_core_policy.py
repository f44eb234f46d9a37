"""Contract §8 policy settings from TOML."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from streams.core.enums import Sector
from streams.core.policy import DEFAULT_POLICY, PolicyBook, PolicyError
from streams.policies import load_policy_book

REPO = Path(__file__).resolve().parents[3]


def test_contract_defaults() -> None:
    policy = PolicyBook.default().policy_for("any")
    assert policy == DEFAULT_POLICY
    assert (policy.soft_opt_in_months, policy.phone_relation_months) == (24, 36)
    assert policy.broadcast_active_days == 90 and policy.min_consent_age == 16
    assert policy.phone_consent_required_from == datetime(2026, 6, 30, 22, 0, tzinfo=UTC)
    assert policy.phone_exception_sectors == {
        Sector.CHARITY,
        Sector.CHARITY_LOTTERY,
        Sector.PRESS_PUBLISHER,
    }
    assert policy.is_similar("koffie", frozenset({"koffie"}))
    assert not policy.is_similar("thee", frozenset({"koffie"}))


def test_example_policy_file() -> None:
    book = load_policy_book(REPO / "policies" / "default.toml")
    assert book.policy_for("unknown") == DEFAULT_POLICY
    coffee = book.policy_for("t-koffiebranderij")
    assert coffee.is_similar("koffiefilters", frozenset({"koffiebonen"}))
    assert not coffee.is_similar("thee", frozenset({"koffiebonen"}))
    bikes = book.for_tenant("t-fietsenwinkel")
    assert bikes.soft_opt_in_months == 12
    assert bikes.phone_relation_months == 36


def test_tenant_inherits_the_default_section(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text(
        "[default]\nsoft_opt_in_months = 18\nphone_consent_required_from = 2027-01-01T00:00:00Z\n"
        "[tenants.t1]\nmin_consent_age = 18\n"
    )
    book = load_policy_book(path)
    tenant = book.policy_for("t1")
    assert (tenant.soft_opt_in_months, tenant.min_consent_age) == (18, 18)
    assert tenant.phone_consent_required_from == datetime(2027, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    "text",
    [
        "[default]\nsoft_opt_in_month = 12\n",
        "[default]\nsoft_opt_in_months = -1\n",
        "[default]\nsoft_opt_in_months = '24'\n",
        "[default]\nphone_exception_sectors = ['bank']\n",
        "[default]\nsimilarity_families = ['a', 'b']\n",
        "[default]\nphone_consent_required_from = 2026-07-01T00:00:00\n",
        "[defaults]\n",
        "not toml = = \n",
    ],
)
def test_malformed_policies_are_refused(tmp_path: Path, text: str) -> None:
    path = tmp_path / "p.toml"
    path.write_text(text)
    with pytest.raises(PolicyError):
        load_policy_book(path)
