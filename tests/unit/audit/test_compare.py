"""Unit tests of the pure audit comparison (no broker, no core)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from streams.audit.compare import (
    EXIT_CLEAN,
    EXIT_RISK,
    AuditMeta,
    DecisionView,
    EmittedDecision,
    FindingKind,
    RequestInfo,
    Transition,
    build_report,
    classify,
    compare,
    diff_policies,
    exit_code_for,
    fold_final,
    text_summary,
)


def view(
    rid: str,
    decision: str = "ALLOW",
    reason: str = "ALLOW_CONSENT",
    *,
    revokes: bool = False,
    tenant: str = "t1",
    entity: str = "Shop BV",
    channel: str = "email",
    rules: tuple[str, ...] = ("R-CONSENT-1",),
) -> DecisionView:
    return DecisionView(
        request_id=rid,
        tenant=tenant,
        legal_entity=entity,
        channel=channel,
        decision=decision,
        reason_code=reason,
        legal_basis="TW117_CONSENT" if decision == "ALLOW" else "NONE",
        rule_ids=rules,
        revokes=revokes,
    )


def req(
    rid: str, *, tenant: str = "t1", entity: str = "Shop BV", channel: str = "email", ts: int = 1000
) -> RequestInfo:
    return RequestInfo(
        rid, tenant, entity, channel, "2026-11-23T10:00:00+01:00", ts, f"send-requests:0:{rid}"
    )


def emitted(v: DecisionView, ts: int = 2000) -> EmittedDecision:
    return EmittedDecision(v, ts, f"sends.x:0:{v.request_id}")


def meta() -> AuditMeta:
    return AuditMeta(
        generated_at=datetime(2026, 11, 23, 12, 0, tzinfo=UTC),
        bootstrap="127.0.0.1:19092",
        topic_prefix="",
        window={"from": "beginning", "to": "end"},
        tenant=None,
        policy={"baseline": "defaults", "candidate": None},
        inputs={},
        outputs={},
        ordering="record timestamp",
    )


def test_decision_view_from_avro_shape_drops_contact() -> None:
    obj: dict[str, Any] = {
        "request_id": "r1",
        "tenant": "t1",
        "legal_entity": "E",
        "channel": "sms",
        "decision": "ALLOW",
        "reason_code": "ALLOW_CONSENT",
        "legal_basis": "TW117_CONSENT",
        "rule_ids": ["R-CONSENT-1"],
        "evidence": ["e1"],
        "rulebook_version": "1.3",
        "revokes": False,
        "contact": {"type": "phone", "value": "+31612345678"},
    }
    v = DecisionView.from_mapping(obj)
    assert v.channel == "sms" and v.rule_ids == ("R-CONSENT-1",)
    assert "+316" not in repr(v) and "+316" not in str(v.to_dict())


def test_fold_final_last_wins_and_revocation_is_final() -> None:
    allow = view("r1")
    revoke = view("r1", "BLOCK", "BLOCK_LATE_OBJECTION", revokes=True)
    assert fold_final([allow, revoke])[("t1", "r1")] == revoke
    # a re-emitted duplicate ALLOW read after the revocation (other topic) does not undo it
    assert fold_final([allow, revoke, allow])[("t1", "r1")] == revoke
    final = fold_final([view("r2", "BLOCK", "BLOCK_OBJECTION"), view("r2")])
    assert final[("t1", "r2")] == view("r2")
    # the same request id in two tenants is two requests
    assert len(fold_final([view("r3"), view("r3", tenant="t2")])) == 2


@pytest.mark.parametrize(
    ("got", "again", "kind"),
    [
        (None, view("r"), FindingKind.MISSING),
        (view("r"), None, FindingKind.NOT_REDECIDED),
        (view("r"), view("r"), FindingKind.AGREE),
        (view("r"), view("r", reason="ALLOW_SOFT_OPT_IN"), FindingKind.REASON_DIFFERS),
        (view("r"), view("r", "BLOCK", "BLOCK_OBJECTION"), FindingKind.ALLOW_TO_BLOCK),
        (view("r", "BLOCK", "BLOCK_OBJECTION"), view("r"), FindingKind.BLOCK_TO_ALLOW),
    ],
)
def test_classify(got: DecisionView | None, again: DecisionView | None, kind: FindingKind) -> None:
    assert classify(got, again) is kind


Keyed = dict[tuple[str, str], DecisionView]
EmittedKeyed = dict[tuple[str, str], EmittedDecision]


def keyed(*views: DecisionView) -> Keyed:
    return {v.key: v for v in views}


def emitted_keyed(*items: EmittedDecision) -> EmittedKeyed:
    return {e.view.key: e for e in items}


def known(*ids: str, tenant: str = "t1") -> set[tuple[str, str]]:
    return {(tenant, i) for i in ids}


ALL_KNOWN = known("r1", "r2", "r3", "r4", "old") | known("r5", tenant="t2")


def scenario() -> tuple[list[RequestInfo], Keyed, EmittedKeyed]:
    requests = [
        req("r1"),
        req("r2", channel="sms"),
        req("r3", entity="Other BV"),
        req("r4"),
        req("r5", tenant="t2"),
    ]
    redecided = keyed(
        view("r1"),
        view("r2", "BLOCK", "BLOCK_OBJECTION", channel="sms", rules=("R-OBJECT-1",)),
        view("r3", "BLOCK", "BLOCK_NO_LEGAL_BASIS", entity="Other BV", rules=()),
        view("r4"),
        view("r5", tenant="t2"),
    )
    got = emitted_keyed(
        emitted(view("r1")),
        emitted(view("r2", channel="sms")),  # ALLOW emitted, should be BLOCK
        emitted(view("r3", entity="Other BV")),  # idem
        # r4: no decision emitted
        emitted(view("r5", tenant="t2")),
        emitted(view("old"), ts=10),  # request before the window: known, not orphan
        emitted(view("ghost", "BLOCK", "BLOCK_OBJECTION"), ts=3000),
    )
    return requests, redecided, got


def test_compare_counts_and_classes() -> None:
    requests, redecided, got = scenario()
    c = compare(requests, redecided, got, ALL_KNOWN)
    assert c.counts[FindingKind.AGREE] == 2
    assert [f.request_id for f in c.of_kind(FindingKind.ALLOW_TO_BLOCK)] == ["r2", "r3"]
    assert [f.request_id for f in c.of_kind(FindingKind.MISSING)] == ["r4"]
    assert [f.request_id for f in c.of_kind(FindingKind.ORPHAN)] == ["ghost"]
    assert c.audited == 5 and c.risk_count == 3
    assert exit_code_for(c) == EXIT_RISK


def test_compare_joins_on_tenant_and_request_id() -> None:
    requests = [req("same"), req("same", tenant="t2")]
    redecided = keyed(view("same"), view("same", "BLOCK", "BLOCK_OBJECTION", tenant="t2"))
    got = emitted_keyed(emitted(view("same")), emitted(view("same", tenant="t2")))
    c = compare(requests, redecided, got, known("same") | known("same", tenant="t2"))
    assert [(f.tenant, f.kind) for f in c.findings] == [
        ("t1", FindingKind.AGREE),
        ("t2", FindingKind.ALLOW_TO_BLOCK),
    ]


def test_compare_tenant_filter_and_orphan_window() -> None:
    requests, redecided, got = scenario()
    c = compare(requests, redecided, got, ALL_KNOWN, tenant="t2")
    assert c.audited == 1 and c.counts[FindingKind.AGREE] == 1
    assert c.counts[FindingKind.ORPHAN] == 0  # ghost is tenant t1
    c2 = compare(requests, redecided, got, set(), orphan_since_ms=2500)
    assert [f.request_id for f in c2.of_kind(FindingKind.ORPHAN)] == ["ghost"]
    c3 = compare(requests, redecided, got, set(), orphan_until_ms=1000)
    assert [f.request_id for f in c3.of_kind(FindingKind.ORPHAN)] == ["old"]


def test_clean_run_exits_zero() -> None:
    requests = [req("a"), req("b")]
    decided = keyed(view("a"), view("b", "BLOCK", "BLOCK_OBJECTION"))
    as_emitted = {k: emitted(v) for k, v in decided.items()}
    c = compare(requests, decided, as_emitted, known("a", "b"))
    assert c.risk_count == 0 and exit_code_for(c) == EXIT_CLEAN
    # BLOCK→ALLOW alone is not a risk class
    c2 = compare(requests, keyed(view("a"), view("b")), as_emitted, known("a", "b"))
    assert c2.counts[FindingKind.BLOCK_TO_ALLOW] == 1 and exit_code_for(c2) == EXIT_CLEAN


def test_breakdown_by_dimension() -> None:
    requests, redecided, got = scenario()
    c = compare(requests, redecided, got, ALL_KNOWN)
    by_channel = c.breakdown("channel")
    assert by_channel["sms"] == {FindingKind.ALLOW_TO_BLOCK: 1}
    assert by_channel["email"][FindingKind.AGREE] == 2
    by_rule = c.breakdown("rule_id")
    assert by_rule["R-OBJECT-1"] == {FindingKind.ALLOW_TO_BLOCK: 1}
    assert by_rule["(none)"] == {FindingKind.ALLOW_TO_BLOCK: 1}
    by_entity = c.breakdown("legal_entity")
    assert by_entity["Other BV"] == {FindingKind.ALLOW_TO_BLOCK: 1}
    by_reason = c.breakdown("reason_code")
    assert by_reason["BLOCK_NO_LEGAL_BASIS"] == {FindingKind.ALLOW_TO_BLOCK: 1}
    assert c.breakdown("emitted_reason_code")["(none)"] == {FindingKind.MISSING: 1}
    with pytest.raises(ValueError):
        c.breakdown("contact")


def test_report_json_shape_and_summary() -> None:
    requests, redecided, got = scenario()
    c = compare(requests, redecided, got, ALL_KNOWN)
    report = build_report(c, meta())
    t = report["totals"]
    assert t == {
        "requests_audited": 5,
        "agreeing": 2,
        "reason_differs": 0,
        "allow_to_block": 2,
        "block_to_allow": 0,
        "missing_decisions": 1,
        "not_redecided": 0,
        "decisions_without_request": 1,
        "risk": 3,
    }
    assert report["exit_code"] == EXIT_RISK
    assert "agree" not in report["findings"]
    assert [f["request_id"] for f in report["findings"]["allow_to_block"]] == ["r2", "r3"]
    assert report["request_ids"]["channel"]["sms"]["allow_to_block"] == ["r2"]
    assert report["breakdown"]["legal_entity"]["Other BV"] == {"allow_to_block": 1}
    summary = text_summary(report)
    assert "ALLOW→BLOCK        2" in summary and "r2, r3" in summary and "RISK" in summary


def test_policy_diff() -> None:
    requests = [req("a"), req("b"), req("c")]
    baseline = keyed(
        view("a", reason="ALLOW_SOFT_OPT_IN"),
        view("b"),
        view("c", "BLOCK", "BLOCK_RELATION_EXPIRED"),
    )
    candidate = keyed(
        view("a", "BLOCK", "BLOCK_RELATION_EXPIRED"),
        view("b"),
        view("c", "BLOCK", "BLOCK_NOT_SIMILAR"),
    )
    changes = diff_policies(requests, baseline, candidate)
    assert [(ch.request_id, ch.transition) for ch in changes] == [
        ("a", Transition.ALLOW_TO_BLOCK),
        ("c", Transition.REASON_ONLY),
    ]
    as_emitted = {k: emitted(v) for k, v in baseline.items()}
    c = compare(requests, candidate, as_emitted, known("a", "b", "c"))
    report = build_report(c, meta(), changes)
    pc = report["policy_change"]
    assert pc["changed"] == 2
    assert pc["by_transition"] == {"allow_to_block": 1, "block_to_allow": 0, "reason_only": 1}
    assert pc["by_reason_change"]["ALLOW_SOFT_OPT_IN → BLOCK_RELATION_EXPIRED"] == 1
    assert report["totals"]["allow_to_block"] == 1
    assert "what-if policy     2 changed" in text_summary(report)
