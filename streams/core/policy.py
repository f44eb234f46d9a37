"""Per-tenant policy settings (contract §8), loaded from TOML.

File layout (see policies/default.toml)::

    [default]                      # overrides the contract §8 defaults for every tenant
    soft_opt_in_months = 24
    similarity_families = [["koffiebonen", "koffiefilters"]]

    [tenants."t-shop"]             # overrides [default] for one tenant
    soft_opt_in_months = 12

A similarity family is a set of categories that are all similar to each other; every
category is always similar to itself (R-SOFTOPTIN-3).
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any

from streams.core.enums import Sector
from streams.core.eventtime import amsterdam_midnight, to_utc


class PolicyError(ValueError):
    """The policy file is malformed."""


def similarity_map(families: Iterable[Iterable[str]]) -> Mapping[str, frozenset[str]]:
    """category -> the categories of every family it belongs to (itself included)."""
    similar: dict[str, set[str]] = {}
    for family in families:
        members = set(family)
        for category in members:
            similar.setdefault(category, {category}).update(members)
    return {category: frozenset(members) for category, members in similar.items()}


PHONE_CONSENT_REQUIRED_FROM = amsterdam_midnight(date(2026, 7, 1))
"""R-PHONE-2: 2026-07-01 00:00 Europe/Amsterdam."""


@dataclass(frozen=True, slots=True)
class Policy:
    """Contract §8 settings. `phone_consent_required_from` is a UTC instant."""

    soft_opt_in_months: int = 24
    phone_relation_months: int = 36
    phone_consent_required_from: datetime = PHONE_CONSENT_REQUIRED_FROM
    phone_exception_sectors: frozenset[Sector] = frozenset(
        {Sector.CHARITY, Sector.CHARITY_LOTTERY, Sector.PRESS_PUBLISHER}
    )
    broadcast_active_days: int = 90
    min_consent_age: int = 16
    idempotency_horizon_days: int = 30
    similarity_families: tuple[frozenset[str], ...] = ()
    similar: Mapping[str, frozenset[str]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    idempotency_horizon: timedelta = field(
        default=timedelta(days=30), init=False, repr=False, compare=False
    )
    """Contract §8: how long a repeated `request_id` / `event_id` of one contact point is
    recognised, in event time (`idempotency_horizon_days` as a timedelta)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "similar", similarity_map(self.similarity_families))
        object.__setattr__(
            self, "idempotency_horizon", timedelta(days=self.idempotency_horizon_days)
        )

    def is_similar(self, promo_category: str, bought: frozenset[str]) -> bool:
        """R-SOFTOPTIN-3: the promoted category is (similar to) one that was bought."""
        if promo_category in bought:
            return True
        family = self.similar.get(promo_category)
        return family is not None and not family.isdisjoint(bought)


DEFAULT_POLICY = Policy()


@dataclass(frozen=True, slots=True)
class PolicyBook:
    """The default policy and per-tenant overrides."""

    default_policy: Policy = DEFAULT_POLICY
    tenants: Mapping[str, Policy] = field(default_factory=dict)

    @classmethod
    def default(cls) -> PolicyBook:
        """Contract §8 defaults for every tenant."""
        return cls()

    def policy_for(self, tenant: str) -> Policy:
        return self.tenants.get(tenant, self.default_policy)

    def for_tenant(self, tenant: str) -> Policy:
        """Alias of `policy_for`."""
        return self.policy_for(tenant)


_INT_SETTINGS = (
    "soft_opt_in_months",
    "phone_relation_months",
    "broadcast_active_days",
    "min_consent_age",
    "idempotency_horizon_days",
)
_SETTINGS = frozenset(
    {
        *_INT_SETTINGS,
        "phone_consent_required_from",
        "phone_exception_sectors",
        "similarity_families",
    }
)


def _instant(value: Any, where: str) -> datetime:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise PolicyError(f"{where}: a date-time needs an offset (or give a plain date)")
        return to_utc(value)
    if isinstance(value, date):
        return amsterdam_midnight(value)
    if isinstance(value, str):
        try:
            return _instant(datetime.fromisoformat(value), where)
        except ValueError:
            pass
        try:
            return amsterdam_midnight(date.fromisoformat(value))
        except ValueError:
            pass
    raise PolicyError(f"{where}: expected a date or an offset date-time")


def _overrides(base: Policy, table: Mapping[str, Any], where: str) -> Policy:
    unknown = set(table) - _SETTINGS
    if unknown:
        raise PolicyError(f"{where}: unknown setting(s) {sorted(unknown)}")
    changes: dict[str, Any] = {}
    for name in _INT_SETTINGS:
        if name in table:
            value = table[name]
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise PolicyError(f"{where}.{name}: expected a non-negative integer")
            changes[name] = value
    if "phone_consent_required_from" in table:
        changes["phone_consent_required_from"] = _instant(
            table["phone_consent_required_from"], f"{where}.phone_consent_required_from"
        )
    if "phone_exception_sectors" in table:
        try:
            changes["phone_exception_sectors"] = frozenset(
                Sector(s) for s in table["phone_exception_sectors"]
            )
        except (TypeError, ValueError) as exc:
            raise PolicyError(f"{where}.phone_exception_sectors: {exc}") from None
    if "similarity_families" in table:
        families = table["similarity_families"]
        if not isinstance(families, list) or not all(
            isinstance(f, list) and all(isinstance(c, str) for c in f) for f in families
        ):
            raise PolicyError(f"{where}.similarity_families: expected a list of string lists")
        changes["similarity_families"] = tuple(frozenset(f) for f in families)
    return replace(base, **changes)


def policy_book_from_mapping(document: Mapping[str, Any]) -> PolicyBook:
    unknown = set(document) - {"default", "tenants"}
    if unknown:
        raise PolicyError(f"unknown section(s) {sorted(unknown)}")
    default = _overrides(DEFAULT_POLICY, document.get("default", {}), "default")
    tenants = {
        name: _overrides(default, table, f"tenants.{name}")
        for name, table in document.get("tenants", {}).items()
    }
    return PolicyBook(default_policy=default, tenants=tenants)


def parse_policy_book(text: str, source: str = "policy") -> PolicyBook:
    """Parse TOML policy text; PolicyError on any unknown or malformed setting. The shell
    reads the file (`streams.policies.load_policy_book`): the core touches no files."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"{source}: {exc}") from None
    return policy_book_from_mapping(document)
