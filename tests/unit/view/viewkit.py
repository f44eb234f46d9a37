"""Helpers of the status-view tests: feed scenario files through the core and collect what
the worker would hand to `StatusView.apply`, plus every raw form of every address."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import phonenumbers

from streams.config import DEFAULT_SCENARIO_DIR
from streams.core.engine import DecisionEngine, contact_points
from streams.core.keys import contact_key
from streams.core.model import ContactState, Decision, keep
from streams.core.parse import parse_event
from streams.core.policy import PolicyBook

SECRET = b"view-test-key"
HEX_KEY = re.compile(r"[0-9a-f]{64}")


def scenario_files() -> list[Path]:
    folder = Path(os.environ.get("SENDGATE_SCENARIOS", str(DEFAULT_SCENARIO_DIR)))
    files = sorted(folder.glob("T*.jsonl"), key=lambda p: int(p.stem[1:]))
    assert len(files) >= 110, f"scenario files missing in {folder}"
    return files


def load(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@dataclass
class Applied:
    """One `StatusView.apply` call as the gate agent would make it."""

    key: str
    state: ContactState
    decisions: tuple[Decision, ...]
    tenant: str
    as_of: datetime
    contact_type: str


def feed(engine: DecisionEngine, obj: dict[str, Any]) -> list[Applied]:
    """Feed one event; return one apply per contact point it touched (fan-out)."""
    event = parse_event(obj)
    decisions = engine.feed(event)
    out = []
    for point in contact_points(event):
        key = contact_key(engine.secret, event.tenant, point)
        state = engine.states.get(key)
        if state is None:
            continue
        # the engine returns the decisions of every contact point of the event; the
        # worker's gate step hands over only this contact's (those now in its state)
        mine = tuple(d for d in decisions if state.decided.get(d.request_id) == keep(d))
        out.append(Applied(key, state, mine, event.tenant, event.occurred_at, str(point.type)))
    return out


def feed_file(path: Path, engine: DecisionEngine | None = None) -> Iterator[Applied]:
    engine = engine or DecisionEngine(PolicyBook.default(), SECRET)
    for obj in load(path):
        yield from feed(engine, obj)


def raw_contacts(obj: dict[str, Any]) -> list[dict[str, str]]:
    """Every contact point written in one event line."""
    found: list[dict[str, str]] = []
    if isinstance(obj.get("contact"), dict):
        found.append(obj["contact"])
    for fact in obj.get("contacts", []) or []:
        found.append(fact["contact"])
    found.extend(obj.get("linked_contacts", []) or [])
    return found


def raw_forms(contact: dict[str, str]) -> set[str]:
    """The forms an address could leak in: as written, trimmed, lower-cased, normalised;
    for phones also E.164 with and without '+', national and digits-only."""
    value = contact["value"]
    forms = {value, value.strip(), value.strip().lower()}
    if contact["type"] == "phone":
        try:
            number = phonenumbers.parse(value, "NL")
            e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
            national = phonenumbers.format_number(
                number, phonenumbers.PhoneNumberFormat.NATIONAL
            )
            forms |= {e164, e164.lstrip("+"), national, re.sub(r"\D", "", national)}
        except phonenumbers.NumberParseException:
            pass
        forms.add(re.sub(r"\D", "", value))
    return {f for f in forms if len(f) >= 6}


def known_addresses(paths: list[Path]) -> set[str]:
    forms: set[str] = set()
    for path in paths:
        for obj in load(path):
            for contact in raw_contacts(obj):
                forms |= raw_forms(contact)
    return forms


def leaks(text: str, forms: set[str]) -> list[str]:
    """The raw forms found in `text`, contact-key hex stripped first (64 hex digits can
    contain a run of decimal digits by chance; they are HMACs, not addresses)."""
    cleaned = HEX_KEY.sub("<key>", text)
    low = cleaned.lower()
    return sorted(f for f in forms if f in cleaned or f.lower() in low)
