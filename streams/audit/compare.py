"""Pure comparison of emitted decisions with re-decisions, and the JSON report.

Nothing here reads Kafka or the clock: `replay` hands in plain values, so every rule of
the audit (which final decision counts, what is a risk, how findings are broken down)
is unit-testable on hand-written decisions.

Privacy: a `DecisionView` keeps only the contract §6 decision fields; the raw contact an
`ApprovedSend` record carries is dropped when the view is made, so no report can leak it.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

import msgspec

REPORT_VERSION = 1

ALLOW = "ALLOW"
BLOCK = "BLOCK"

EXIT_CLEAN = 0
EXIT_ERROR = 1
EXIT_RISK = 2


class FindingKind(StrEnum):
    """What the audit concluded for one request id (mutually exclusive classes)."""

    AGREE = "agree"
    REASON_DIFFERS = "reason_differs"
    ALLOW_TO_BLOCK = "allow_to_block"
    BLOCK_TO_ALLOW = "block_to_allow"
    MISSING = "missing_decision"
    NOT_REDECIDED = "not_redecided"
    ORPHAN = "decision_without_request"


# Classes that make the audit fail (exit 2): a send without a basis, or a request the
# gate never answered (the caller may have sent anyway, or the customer never got it).
RISK_KINDS: frozenset[FindingKind] = frozenset({FindingKind.ALLOW_TO_BLOCK, FindingKind.MISSING})

# Classes that partition the audited requests; ORPHAN is about decisions, not requests.
AUDITED_KINDS: tuple[FindingKind, ...] = (
    FindingKind.AGREE,
    FindingKind.REASON_DIFFERS,
    FindingKind.ALLOW_TO_BLOCK,
    FindingKind.BLOCK_TO_ALLOW,
    FindingKind.MISSING,
    FindingKind.NOT_REDECIDED,
)
ALL_KINDS: tuple[FindingKind, ...] = (*AUDITED_KINDS, FindingKind.ORPHAN)

KIND_LABELS: dict[FindingKind, str] = {
    FindingKind.AGREE: "agreeing",
    FindingKind.REASON_DIFFERS: "same decision, other reason",
    FindingKind.ALLOW_TO_BLOCK: "ALLOW→BLOCK (sent without a basis)",
    FindingKind.BLOCK_TO_ALLOW: "BLOCK→ALLOW",
    FindingKind.MISSING: "missing decision",
    FindingKind.NOT_REDECIDED: "not re-decided",
    FindingKind.ORPHAN: "decision without request",
}

# Request ids are unique per tenant (the engine's idempotency is per tenant too), so the
# audit joins on (tenant, request_id).
RequestKey = tuple[str, str]

DIMENSIONS: tuple[str, ...] = (
    "reason_code",
    "emitted_reason_code",
    "rule_id",
    "legal_entity",
    "channel",
    "tenant",
)


def _text(value: Any) -> str:
    """Enum members, plain strings and None alike, as the contract's JSON string."""
    if value is None:
        return ""
    inner = getattr(value, "value", value)
    return str(inner)


class DecisionView(msgspec.Struct, frozen=True, gc=False):
    """The comparable part of a decision (contract §6), without any contact value.

    A msgspec Struct (built in C, never scanned by the collector): the replay builds one
    per decision."""

    request_id: str
    tenant: str
    legal_entity: str
    channel: str
    decision: str
    reason_code: str
    legal_basis: str
    rule_ids: tuple[str, ...] = ()
    revokes: bool = False
    rulebook_version: str = ""

    @property
    def key(self) -> RequestKey:
        return (self.tenant, self.request_id)

    @classmethod
    def from_mapping(cls, obj: Mapping[str, Any]) -> DecisionView:
        """From `decision_to_dict` output or an Avro-decoded Decision/ApprovedSend."""
        return cls(
            request_id=_text(obj["request_id"]),
            tenant=_text(obj.get("tenant")) or "default",
            legal_entity=_text(obj.get("legal_entity")),
            channel=_text(obj.get("channel")),
            decision=_text(obj["decision"]),
            reason_code=_text(obj.get("reason_code")),
            legal_basis=_text(obj.get("legal_basis")),
            rule_ids=tuple(_text(r) for r in obj.get("rule_ids") or ()),
            revokes=bool(obj.get("revokes")),
            rulebook_version=_text(obj.get("rulebook_version")),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "decision": self.decision,
            "reason_code": self.reason_code,
            "legal_basis": self.legal_basis,
            "rule_ids": list(self.rule_ids),
            "revokes": self.revokes,
        }


class RequestInfo(msgspec.Struct, frozen=True, gc=False):
    """An accepted send request as read from the input log (no contact value); one per
    replayed request."""

    request_id: str
    tenant: str
    legal_entity: str
    channel: str
    occurred_at: str
    timestamp_ms: int
    position: str  # "topic:partition:offset", for finding the record again

    @property
    def key(self) -> RequestKey:
        return (self.tenant, self.request_id)


class EmittedDecision(msgspec.Struct, frozen=True, gc=False):
    """One decision record from an output topic, with where and when it was logged."""

    view: DecisionView
    timestamp_ms: int
    position: str


def fold_final(decisions: Iterable[DecisionView]) -> dict[RequestKey, DecisionView]:
    """The final decision per request, given decisions in log order (contract §6).

    The last one wins, except that a revocation (`revokes: true`) is never replaced by
    a non-revoking decision: a BLOCK is final and only an open ALLOW is revoked (§7), so
    a non-revoking record after a revocation can only be a re-emitted duplicate that
    overtook it on another topic, where no cross-topic order exists.
    """
    final: dict[RequestKey, DecisionView] = {}
    for d in decisions:
        current = final.get(d.key)
        if current is not None and current.revokes and not d.revokes:
            continue
        final[d.key] = d
    return final


def classify(emitted: DecisionView | None, redecided: DecisionView | None) -> FindingKind:
    """The finding class of one audited request."""
    if emitted is None:
        return FindingKind.MISSING
    if redecided is None:
        return FindingKind.NOT_REDECIDED
    if emitted.decision == redecided.decision:
        if emitted.reason_code == redecided.reason_code:
            return FindingKind.AGREE
        return FindingKind.REASON_DIFFERS
    if emitted.decision == ALLOW:
        return FindingKind.ALLOW_TO_BLOCK
    return FindingKind.BLOCK_TO_ALLOW


@dataclass(frozen=True, slots=True)
class Finding:
    """The audit's verdict on one request id (or on one orphan decision)."""

    kind: FindingKind
    request_id: str
    tenant: str
    legal_entity: str
    channel: str
    emitted: DecisionView | None
    redecided: DecisionView | None
    position: str = ""

    @property
    def is_risk(self) -> bool:
        return self.kind in RISK_KINDS

    def dimension_values(self, dimension: str) -> tuple[str, ...]:
        """The value(s) of a breakdown dimension; rule ids give one value per rule."""
        best = self.redecided or self.emitted
        if dimension == "reason_code":
            return (best.reason_code,) if best else ("",)
        if dimension == "emitted_reason_code":
            return (self.emitted.reason_code,) if self.emitted else ("(none)",)
        if dimension == "rule_id":
            rules = best.rule_ids if best else ()
            return rules or ("(none)",)
        if dimension == "legal_entity":
            return (self.legal_entity,)
        if dimension == "channel":
            return (self.channel,)
        if dimension == "tenant":
            return (self.tenant,)
        raise ValueError(f"unknown dimension {dimension!r}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "request_id": self.request_id,
            "tenant": self.tenant,
            "legal_entity": self.legal_entity,
            "channel": self.channel,
            "position": self.position,
            "emitted": self.emitted.to_dict() if self.emitted else None,
            "redecided": self.redecided.to_dict() if self.redecided else None,
        }


@dataclass(frozen=True)
class Comparison:
    """Every finding of one audit run, in input log order (orphans last)."""

    findings: tuple[Finding, ...]
    counts: Mapping[FindingKind, int] = field(default_factory=dict)

    @staticmethod
    def of(findings: Sequence[Finding]) -> Comparison:
        counts = Counter(f.kind for f in findings)
        return Comparison(tuple(findings), {k: counts.get(k, 0) for k in ALL_KINDS})

    @property
    def audited(self) -> int:
        return sum(self.counts[k] for k in AUDITED_KINDS)

    @property
    def risk_count(self) -> int:
        return sum(self.counts[k] for k in RISK_KINDS)

    def of_kind(self, kind: FindingKind) -> list[Finding]:
        return [f for f in self.findings if f.kind is kind]

    def breakdown(self, dimension: str) -> dict[str, dict[FindingKind, int]]:
        """Counts per value of `dimension` and per finding class."""
        table: dict[str, dict[FindingKind, int]] = defaultdict(dict)
        for f in self.findings:
            for value in f.dimension_values(dimension):
                row = table[value]
                row[f.kind] = row.get(f.kind, 0) + 1
        return dict(sorted(table.items(), key=lambda kv: (-sum(kv[1].values()), kv[0])))


def compare(
    requests: Sequence[RequestInfo],
    redecided: Mapping[RequestKey, DecisionView],
    emitted: Mapping[RequestKey, EmittedDecision],
    known_requests: Collection[RequestKey],
    *,
    tenant: str | None = None,
    orphan_since_ms: int | None = None,
    orphan_until_ms: int | None = None,
) -> Comparison:
    """Join the audited requests with the final emitted and re-decided decisions.

    `requests` are the accepted send requests of the window (first occurrence of each
    request, log order); `known_requests` every accepted (tenant, request id) of the whole
    input log, so a decision for a request before the window is not called an orphan.
    An orphan is an emitted final decision (of `tenant`, logged in [`orphan_since_ms`,
    `orphan_until_ms`), each when given) whose request id no accepted input request carries.
    """
    findings: list[Finding] = []
    for req in requests:
        if tenant is not None and req.tenant != tenant:
            continue
        got = emitted.get(req.key)
        again = redecided.get(req.key)
        findings.append(
            Finding(
                kind=classify(got.view if got else None, again),
                request_id=req.request_id,
                tenant=req.tenant,
                legal_entity=req.legal_entity,
                channel=req.channel,
                emitted=got.view if got else None,
                redecided=again,
                position=req.position,
            )
        )
    known = known_requests if isinstance(known_requests, set | frozenset) else set(known_requests)
    orphans = [
        e
        for key, e in emitted.items()
        if key not in known
        and (tenant is None or e.view.tenant == tenant)
        and (orphan_since_ms is None or e.timestamp_ms >= orphan_since_ms)
        and (orphan_until_ms is None or e.timestamp_ms < orphan_until_ms)
    ]
    orphans.sort(key=lambda e: (e.timestamp_ms, e.position))
    findings.extend(
        Finding(
            kind=FindingKind.ORPHAN,
            request_id=e.view.request_id,
            tenant=e.view.tenant,
            legal_entity=e.view.legal_entity,
            channel=e.view.channel,
            emitted=e.view,
            redecided=None,
            position=e.position,
        )
        for e in orphans
    )
    return Comparison.of(findings)


# --------------------------------------------------------------------------- what-if


class Transition(StrEnum):
    ALLOW_TO_BLOCK = "allow_to_block"
    BLOCK_TO_ALLOW = "block_to_allow"
    REASON_ONLY = "reason_only"


@dataclass(frozen=True, slots=True)
class PolicyChange:
    """A request whose re-decision differs between the policy in force and the candidate."""

    request_id: str
    tenant: str
    legal_entity: str
    channel: str
    before: DecisionView
    after: DecisionView

    @property
    def transition(self) -> Transition:
        if self.before.decision == self.after.decision:
            return Transition.REASON_ONLY
        if self.before.decision == ALLOW:
            return Transition.ALLOW_TO_BLOCK
        return Transition.BLOCK_TO_ALLOW

    def to_dict(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "tenant": self.tenant,
            "legal_entity": self.legal_entity,
            "channel": self.channel,
            "transition": self.transition.value,
            "before": self.before.to_dict(),
            "after": self.after.to_dict(),
        }


def diff_policies(
    requests: Sequence[RequestInfo],
    baseline: Mapping[RequestKey, DecisionView],
    candidate: Mapping[RequestKey, DecisionView],
    *,
    tenant: str | None = None,
) -> tuple[PolicyChange, ...]:
    """Requests whose final re-decision changes under the candidate policy."""
    changes: list[PolicyChange] = []
    for req in requests:
        if tenant is not None and req.tenant != tenant:
            continue
        before = baseline.get(req.key)
        after = candidate.get(req.key)
        if before is None or after is None:
            continue
        if (before.decision, before.reason_code) == (after.decision, after.reason_code):
            continue
        changes.append(
            PolicyChange(req.request_id, req.tenant, req.legal_entity, req.channel, before, after)
        )
    return tuple(changes)


# --------------------------------------------------------------------------- report


@dataclass(frozen=True)
class AuditMeta:
    """Where the audit read from and how: printed in the report so it can be re-run."""

    generated_at: datetime
    bootstrap: str
    topic_prefix: str
    window: Mapping[str, Any]
    tenant: str | None
    policy: Mapping[str, Any]
    inputs: Mapping[str, Any]
    outputs: Mapping[str, Any]
    ordering: str


def _kind_counts(counts: Mapping[FindingKind, int]) -> dict[str, int]:
    return {k.value: counts.get(k, 0) for k in ALL_KINDS}


def build_report(
    comparison: Comparison,
    meta: AuditMeta,
    policy_changes: Sequence[PolicyChange] | None = None,
) -> dict[str, Any]:
    """The JSON report: totals, breakdowns, the non-agreeing findings, the what-if section.

    Agreeing requests are counted, not listed (they are the bulk); every other class
    lists its request ids.
    """
    counts = comparison.counts
    totals = {
        "requests_audited": comparison.audited,
        "agreeing": counts[FindingKind.AGREE],
        "reason_differs": counts[FindingKind.REASON_DIFFERS],
        "allow_to_block": counts[FindingKind.ALLOW_TO_BLOCK],
        "block_to_allow": counts[FindingKind.BLOCK_TO_ALLOW],
        "missing_decisions": counts[FindingKind.MISSING],
        "not_redecided": counts[FindingKind.NOT_REDECIDED],
        "decisions_without_request": counts[FindingKind.ORPHAN],
        "risk": comparison.risk_count,
    }
    breakdown: dict[str, Any] = {}
    ids: dict[str, Any] = {}
    for dim in DIMENSIONS:
        table = comparison.breakdown(dim)
        breakdown[dim] = {
            value: {k.value: n for k, n in row.items()} for value, row in table.items()
        }
    for f in comparison.findings:
        if f.kind is FindingKind.AGREE:
            continue
        for dim in DIMENSIONS:
            for value in f.dimension_values(dim):
                ids.setdefault(dim, {}).setdefault(value, {}).setdefault(f.kind.value, []).append(
                    f.request_id
                )
    findings = {
        k.value: [f.to_dict() for f in comparison.of_kind(k)]
        for k in ALL_KINDS
        if k is not FindingKind.AGREE
    }
    report: dict[str, Any] = {
        "report_version": REPORT_VERSION,
        "generated_at": meta.generated_at.isoformat(),
        "source": {
            "bootstrap": meta.bootstrap,
            "topic_prefix": meta.topic_prefix,
            "inputs": dict(meta.inputs),
            "outputs": dict(meta.outputs),
            "ordering": meta.ordering,
        },
        "window": dict(meta.window),
        "tenant": meta.tenant,
        "policy": dict(meta.policy),
        "totals": totals,
        "risk_classes": sorted(k.value for k in RISK_KINDS),
        "exit_code": exit_code_for(comparison),
        "kind_labels": {k.value: KIND_LABELS[k] for k in ALL_KINDS},
        "counts": _kind_counts(counts),
        "breakdown": breakdown,
        "request_ids": ids,
        "findings": findings,
        "policy_change": None,
    }
    if policy_changes is not None:
        report["policy_change"] = policy_change_section(policy_changes)
    return report


def policy_change_section(changes: Sequence[PolicyChange]) -> dict[str, Any]:
    """What-if: counts by transition and by reason pair, and every changed request."""
    by_transition = Counter(c.transition.value for c in changes)
    by_reasons = Counter(f"{c.before.reason_code} → {c.after.reason_code}" for c in changes)
    by_channel = Counter(c.channel for c in changes)
    by_entity = Counter(c.legal_entity for c in changes)
    return {
        "changed": len(changes),
        "by_transition": {t.value: by_transition.get(t.value, 0) for t in Transition},
        "by_reason_change": dict(by_reasons.most_common()),
        "by_channel": dict(by_channel.most_common()),
        "by_legal_entity": dict(by_entity.most_common()),
        "changes": [c.to_dict() for c in changes],
    }


def exit_code_for(comparison: Comparison) -> int:
    """0 when nothing is in a risk class, 2 otherwise (cron/CI friendly)."""
    return EXIT_RISK if comparison.risk_count else EXIT_CLEAN


def text_summary(report: Mapping[str, Any]) -> str:
    """A few lines for the terminal or a cron mail: totals and the risky request ids."""
    t = report["totals"]
    lines = [
        f"requests audited   {t['requests_audited']}",
        f"agreeing           {t['agreeing']}",
        f"other reason       {t['reason_differs']}",
        f"ALLOW→BLOCK        {t['allow_to_block']}   (risk: sent without a basis)",
        f"BLOCK→ALLOW        {t['block_to_allow']}",
        f"missing decisions  {t['missing_decisions']}   (risk)",
        f"no request         {t['decisions_without_request']}",
    ]
    if t["not_redecided"]:
        lines.append(f"not re-decided     {t['not_redecided']}")
    for kind in (FindingKind.ALLOW_TO_BLOCK.value, FindingKind.MISSING.value):
        rows = report["findings"].get(kind) or []
        if rows:
            shown = ", ".join(r["request_id"] for r in rows[:20])
            more = f" … +{len(rows) - 20}" if len(rows) > 20 else ""
            lines.append(f"{kind}: {shown}{more}")
    change = report.get("policy_change")
    if change is not None:
        bt = change["by_transition"]
        lines.append(
            f"what-if policy     {change['changed']} changed "
            f"(ALLOW→BLOCK {bt['allow_to_block']}, BLOCK→ALLOW {bt['block_to_allow']}, "
            f"reason only {bt['reason_only']})"
        )
    lines.append("verdict            " + ("RISK" if t["risk"] else "clean"))
    return "\n".join(lines)
