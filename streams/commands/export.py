"""`sendgate export CONTACT --tenant T`: a person's access report (GDPR Art 15, R-DSR-1).

Prints JSON: every fact held under the contact's key (orders, consents with their proof
references, objections/unsubscribes/erasures, other signups, relay flags), where each
came from (input topic, event ids, the source fields of the contract) and the decisions
taken for the contact.

Sources, both read from Kafka so that no worker needs to run:
* the state: the latest value of the contact key in the changelog topic of the
  contact-state table (`{prefix}{app_id}-contact-state-changelog`), i.e. exactly what the
  stream job decides from. A tombstone or no record means no state is held.
* the decisions: the final decision per request kept in that state, plus every decision
  record on `sends.approved`, `sends.blocked` and `sends.revoked` whose Kafka key is the
  contact key (those topics keep 30 days; --no-topic-scan skips this full scan).

Only the partition the contact key is produced to is read (murmur2 of the key, as every
sendgate producer partitions; `--all-partitions` scans them all), so a report takes well
under a second whatever the size of the topics. Exit code 3 when nothing is held for the
contact (no state, no decision): the report is still printed.

After `erasure_completed` (R-DSR-2) the report shows the keyed-hash suppression record
only. The report contains the person's own contact value (it answers their request):
hand it over through a secure channel, do not store it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from streams.commands.status import CONTACT_TYPES, guess_type, read_contact

OUTPUT_TOPICS = ("sends.approved", "sends.blocked", "sends.revoked")
NOTHING_HELD = 3  # exit code: the report says nothing is held (an unknown contact)

# Where each fact came from: the input topic of the event that created it.
FACT_TOPICS = {
    "orders": "orders",
    "consents": "signups",
    "touchpoints": "signups",
    "suppressions": "unsubscribes",
}

PURPOSES = {
    "orders": "customer/donor relation: basis for soft opt-in, live calls and post "
              "(R-SOFTOPTIN, R-PHONE, R-POST); order execution messages (R-SERVICE)",
    "consents": "proof of consent for marketing on the named channels (R-CONSENT)",
    "suppressions": "honouring objections, unsubscribes and erasure (R-OBJECT, R-DSR-2)",
    "touchpoints": "nearest-miss reasons and active-relationship checks (R-SERVICE)",
}

RETENTION = {
    "state": "kept until erasure (R-DSR-2), then only the keyed-hash suppression record",
    "decision topics": "30 days (sends.approved, sends.blocked, sends.revoked)",
    "input topics": "30 days",
    "status view": "projection of the state, deleted with it",
}


def register(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.description = __doc__
    p.add_argument("contact", metavar="CONTACT", help="the contact value, or - for stdin")
    p.add_argument("--tenant", required=True)
    p.add_argument("--type", dest="contact_type", choices=CONTACT_TYPES,
                   help="contact type (default: guessed, email or phone)")
    p.add_argument("--topic-prefix", default=None,
                   help="prefix of every topic name (default $SENDGATE_TOPIC_PREFIX)")
    p.add_argument("--app-id", default=None, help="faust app id (default $SENDGATE_APP_ID)")
    p.add_argument("--no-topic-scan", action="store_true",
                   help="decisions from the state only (skip scanning the output topics)")
    p.add_argument("--all-partitions", action="store_true",
                   help="scan every partition, not only the one the contact key is "
                        "produced to (records from a producer that does not partition by "
                        "murmur2 of the key)")
    p.add_argument("-o", "--output", help="write the report to this file (mode 0600)")


def run(args: argparse.Namespace) -> int:
    from streams.config import MissingSecret, Settings, hmac_key
    from streams.core.enums import ContactType
    from streams.core.errors import RejectedRecord
    from streams.core.keys import contact_key, normalise
    from streams.core.model import ContactPoint

    value = read_contact(args.contact)
    ctype = args.contact_type or guess_type(value)
    if ctype is None:
        print("sendgate export: cannot tell the contact type: give --type", file=sys.stderr)
        return 2
    try:
        point = normalise(ContactPoint(ContactType(ctype), value))
        ckey = contact_key(hmac_key(), args.tenant, point)
    except MissingSecret as exc:
        print(f"sendgate export: {exc}", file=sys.stderr)
        return 2
    except RejectedRecord as exc:
        print(f"sendgate export: contact not usable as {ctype}: {exc.reason.value}",
              file=sys.stderr)
        return 2
    settings = Settings.from_env()
    try:
        report = build_report(
            settings.kafka_bootstrap, args.tenant, point, ckey,
            topic_prefix=(settings.topic_prefix if args.topic_prefix is None
                          else args.topic_prefix),
            app_id=args.app_id or settings.app_id,
            scan_topics=not args.no_topic_scan, settings=settings,
            key_partition_only=not args.all_partitions,
        )
    except Exception as exc:
        print(f"sendgate export: failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    text = json.dumps(report, indent=2, ensure_ascii=False, default=str)
    if args.output:
        fd = os.open(args.output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")
    else:
        print(text)
    if not report["state_held"] and not report["decisions"]:
        print("sendgate export: nothing is held for this contact (no state, no decision)",
              file=sys.stderr)
        return NOTHING_HELD
    return 0


def _source(section: str, fact: Mapping[str, Any]) -> dict[str, Any]:
    topic = FACT_TOPICS[section]
    if section == "suppressions" and fact.get("source") == "checkout_optout":
        topic = "orders"  # an opt-out used at checkout comes with the order
    event_ids = [fact["event_id"]]
    paid = fact.get("paid_event_id")
    if paid and paid not in event_ids:
        event_ids.insert(0, paid)
    src: dict[str, Any] = {"input_topic": topic, "event_ids": event_ids}
    if section == "consents":
        src.update(
            collected_by=fact.get("legal_entity"), source=fact.get("source"),
            mechanism=fact.get("mechanism"), proof_ref=fact.get("proof_ref"),
            wording_version=fact.get("wording_version"),
        )
    elif section == "suppressions":
        src.update(source=fact.get("source"), received_by=fact.get("legal_entity"),
                   received_at=fact.get("received_at"))
    elif section == "orders":
        src.update(
            sold_by=fact.get("legal_entity"), order_id=fact.get("order_id"),
            obtained_at_sale=fact.get("obtained_at_sale"),
            optout_offered=fact.get("optout_offered"),
            optout_method=fact.get("optout_method"), address_type=fact.get("address_type"),
        )
    else:
        src.update(kind=fact.get("kind"), collected_by=fact.get("legal_entity"))
    return src


def facts_report(dumped: Mapping[str, Any]) -> dict[str, Any]:
    """The facts of `dump_state`, each with where it came from."""
    out: dict[str, Any] = {}
    for section in ("orders", "consents", "suppressions", "touchpoints"):
        out[section] = [
            {"fact": dict(fact), "came_from": _source(section, fact)}
            for fact in dumped.get(section, [])
        ]
    out["relay_flags"] = {
        "relay_entities": list(dumped.get("relay_entities", [])),
        "relay_kept_after_erasure": list(dumped.get("relay_kept", [])),
    }
    return out


def _decision_key(d: Mapping[str, Any]) -> tuple[str, str, str, bool]:
    return (str(d.get("request_id")), str(d.get("decision")), str(d.get("reason_code")),
            bool(d.get("revokes")))


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def scan_decisions(
    bootstrap: str, topic_prefix: str, ckey: str, settings: Any,
    key_partition_only: bool = True,
) -> list[dict[str, Any]]:
    """Every decision record keyed by the contact key on the output topics."""
    from streams.codecs.registry import get_codec
    from streams.commands.view import TopicMissing, scan_topic

    codec = get_codec(settings)
    found: list[dict[str, Any]] = []
    for name in OUTPUT_TOPICS:
        topic = topic_prefix + name
        try:
            records = list(scan_topic(bootstrap, topic, only_key=ckey.encode(),
                                      key_partition_only=key_partition_only))
        except TopicMissing:
            continue
        for partition, offset, _key, value in records:
            if value is None:
                continue
            _, obj = codec.decode(value)
            record = _plain(obj)
            carried = record.pop("contact", None)
            record["found_on"] = {"topic": topic, "partition": partition, "offset": offset}
            if carried is not None:
                record["found_on"]["record_also_carries_the_contact"] = True
            found.append(record)
    return found


def build_report(
    bootstrap: str,
    tenant: str,
    point: Any,
    ckey: str,
    *,
    topic_prefix: str = "",
    app_id: str = "sendgate",
    scan_topics: bool = True,
    settings: Any = None,
    key_partition_only: bool = True,
) -> dict[str, Any]:
    from streams.commands.view import changelog_topic, read_latest
    from streams.core.engine import dump_state
    from streams.gate.state_codec import decode_state
    from streams.view.projection import erased_at

    topic = changelog_topic(app_id, topic_prefix)
    latest = None
    for _partition, found in read_latest(bootstrap, topic, only_key=ckey.encode(),
                                         key_partition_only=key_partition_only):
        rec = found.get(ckey.encode())
        if rec is not None:
            latest = rec
    state_source: dict[str, Any] = {"topic": topic}
    dumped: dict[str, Any] | None = None
    state = None
    if latest is not None:
        state_source.update(partition=latest.partition, offset=latest.offset)
        if latest.value is not None:
            state = decode_state(latest.value)
            dumped = None if state is None else dump_state(state)
        else:
            state_source["tombstone"] = True
    decisions: list[dict[str, Any]] = []
    seen: set[tuple[str, str, str, bool]] = set()
    if dumped is not None:
        for d in dumped.get("decided", {}).values():
            entry = {"request_id": d["request_id"], "tenant": tenant,
                     **{k: v for k, v in d.items() if k != "request_id"}}
            entry["found_on"] = {"state": "final decision of the request"}
            decisions.append(entry)
            seen.add(_decision_key(entry))
    if scan_topics:
        for found_rec in scan_decisions(bootstrap, topic_prefix, ckey, settings,
                                        key_partition_only):
            k = _decision_key(found_rec)
            if k in seen:
                for d in decisions:
                    if _decision_key(d) == k and "record" not in d["found_on"]:
                        d["found_on"]["record"] = found_rec["found_on"]
                        if found_rec.get("decided_at"):
                            d["decided_at"] = found_rec["decided_at"]
                        break
                continue
            seen.add(k)
            decisions.append(found_rec)
    decisions.sort(key=lambda d: (str(d.get("as_of")), str(d.get("request_id"))))
    facts = facts_report(dumped) if dumped is not None else None
    entities: set[str] = set()
    platforms: set[str] = set()
    if dumped is not None:
        for section in ("orders", "consents", "suppressions", "touchpoints"):
            for f in dumped.get(section, []):
                entities.add(f["legal_entity"])
                if section == "consents":
                    entities.add(f["named_legal_entity"])
                    platforms.update(f.get("platforms", []))
    for d in decisions:
        entities.add(str(d.get("legal_entity")))
        if d.get("platform"):
            platforms.add(str(d["platform"]))
    erased = erased_at(state) if state is not None else None
    return {
        "report": "access report (GDPR Art 15, R-DSR-1)",
        "generated_at": datetime.now(UTC).isoformat(),
        "tenant": tenant,
        "subject": {"type": str(point.type), "value": point.value},
        "contact_key": ckey,
        "state_source": state_source,
        "state_held": dumped is not None,
        "erased": erased is not None,
        "erased_at": erased.isoformat() if erased is not None else None,
        "facts": facts,
        "purposes": PURPOSES,
        "recipients": {
            "legal_entities": sorted(e for e in entities if e and e != "None"),
            "platforms": sorted(platforms),
            "processors": ["email/SMS service provider (approved sends, sends.approved)"],
        },
        "decisions": decisions,
        "retention": RETENTION,
    }
