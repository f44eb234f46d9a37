"""The changelog value: every scenario state round-trips through the worker's codec, the view
hint rides along without changing the state, and a corrupt stored state is refused."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import orjson
import pytest
from unit.view.viewkit import feed_file, scenario_files

from streams.core.engine import dump_state
from streams.gate.state_codec import ViewHint, decode_changelog_value, decode_state, encode_state


def _states() -> list[object]:
    return [a.state for path in scenario_files() for a in feed_file(path)]


def test_every_scenario_state_round_trips() -> None:
    states = _states()
    assert len(states) > 250
    for state in states:
        raw = encode_state(state)  # type: ignore[arg-type]
        assert decode_state(raw) == state
        # the JSON written by the previous (json module) codec reads the same
        assert decode_state(json.dumps(dump_state(state)).encode()) == state  # type: ignore[arg-type]


def test_view_hint_rides_along_and_old_values_have_none() -> None:
    state = next(s for s in _states() if s.decided)  # type: ignore[attr-defined]
    hint = ViewHint("shop-1", datetime(2026, 11, 27, 9, 30, tzinfo=UTC), "email")
    got_state, got_hint = decode_changelog_value(encode_state(state, hint))  # type: ignore[arg-type]
    assert got_state == state and got_hint == hint
    assert decode_state(encode_state(state, hint)) == state  # type: ignore[arg-type]
    assert decode_changelog_value(encode_state(state))[1] is None  # type: ignore[arg-type]
    bad = orjson.loads(encode_state(state, hint))  # type: ignore[arg-type]
    bad["view"]["at"] = "yesterday"
    assert decode_changelog_value(orjson.dumps(bad))[1] is None


@pytest.mark.parametrize(
    "corrupt",
    [
        lambda d: d["decision"].update(channel="carrier-pigeon"),
        lambda d: d["decision"].update(as_of="2026-11-27 09:00"),
        lambda d: d["decision"].update(revokes="no"),
        lambda d: d["decision"].update(surprise=1),
        lambda d: d["decision"].pop("reason_code"),
    ],
    ids=["unknown enum value", "malformed instant", "non-boolean flag", "unknown field",
         "missing field"],
)
def test_a_corrupt_stored_decision_is_refused(corrupt: object) -> None:
    state = next(s for s in _states() if s.decided)  # type: ignore[attr-defined]
    data = orjson.loads(encode_state(state))  # type: ignore[arg-type]
    rid = next(iter(data["decided"]))
    holder = {"decision": data["decided"][rid]}
    corrupt(holder)  # type: ignore[operator]
    with pytest.raises((ValueError, KeyError)):
        decode_state(orjson.dumps(data))
