"""Pure-core benchmark: folds/s and decisions/s on one core (`make bench-core`).

Generates a deterministic workload (default 120k contact points in 5 tenants, 1M events:
70 % send requests, 15 % orders, 10 % signups, 5 % unsubscribes), parses it once, then
times three phases separately:

  fold     `apply(state, event, contact)` for every fact event and contact point
  decide   `decide(state, request, policy)` for every send request, on the folded states
  engine   `DecisionEngine.feed` over the whole stream in arrival order (HMAC keys,
           idempotency, open approvals and re-checks included)

Then, from the same run (issue 16 goals, as rates and ratios):

  parse+engine   events/s of parse and engine together (goal >= 60k, aim 100k)
  state codec    stored contact states after the engine phase: mean bytes per contact
                 (goal <= 1 KB at ~10 events per contact) and decode+encode time back to
                 back per state, as the worker does per event (goal <= 10 us)
  decide ratio   the `sendgate decide` code path over a file of the shared scenarios
                 repeated `--decide-repeat` times under fresh tenants, against a plain
                 json.loads + json.dumps pass over the same file (goal <= 3x, aim 2x);
                 the best of `--decide-rounds` interleaved passes of each

Prints a small table and writes bench/results/core.json. `--profile` adds a pyinstrument
profile of the decide and engine phases.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import gc
import io
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from streams.core.apply import apply
from streams.core.decide import decide
from streams.core.engine import DecisionEngine, contact_points
from streams.core.model import ContactPoint, ContactState, Event, SendRequest
from streams.core.parse import parse_event
from streams.core.policy import Policy, PolicyBook
from streams.gate.state_codec import decode_state, encode_state

RESULTS = Path(__file__).resolve().parent / "results"
SECRET = b"bench-core-not-a-secret"
ENTITIES = ("Bergop BV", "Bergop Outlet BV", "Koffiehuis BV")
CATEGORIES = ("wandelschoenen", "jassen", "tenten", "rugzakken", "koffie", "boeken")
FAMILIES = (("wandelschoenen", "rugzakken", "tenten"), ("koffie", "boeken"))
SERVICE_KINDS = ("order_confirmation", "shipping_update", "invoice", "broadcast")


class Generator:
    """A shop-like feed: event time moves forward; each contact point belongs to a tenant."""

    def __init__(self, contacts: int, tenants: int, seed: int) -> None:
        self.contacts = contacts
        self.tenants = tenants
        self.rng = random.Random(seed)
        self.clock = datetime(2025, 1, 1, 9, 0, tzinfo=UTC)
        self.step = timedelta(seconds=(2 * 365 * 86400) / 1_000_000)
        self.seq = 0

    def contact(self, n: int) -> tuple[str, dict[str, str]]:
        tenant = f"shop-{n % self.tenants}"
        if n % 5 == 4:
            return tenant, {"type": "phone", "value": f"+316{n:08d}"}
        return tenant, {"type": "email", "value": f"klant{n}@example.nl"}

    def common(self, kind: str, n: int) -> tuple[dict[str, Any], dict[str, str]]:
        self.seq += 1
        self.clock += self.step
        tenant, contact = self.contact(n)
        return {
            "type": kind,
            "event_id": f"e{self.seq}",
            "occurred_at": self.clock.isoformat(),
            "tenant": tenant,
            "legal_entity": self.rng.choice(ENTITIES),
        }, contact

    def order(self, n: int) -> dict[str, Any]:
        r = self.rng
        event, contact = self.common("order", n)
        return event | {
            "order_id": f"o{r.randrange(n * 3, n * 3 + 3)}",
            "kind": r.choices(("purchase", "subscription", "donation"), (85, 10, 5))[0],
            "status": r.choices(
                ("paid", "placed", "cancelled", "refunded", "abandoned"), (80, 6, 4, 3, 7)
            )[0],
            "paid_amount_cents": r.choice((0, 1995, 4995, 12900)),
            "product_categories": r.sample(CATEGORIES, r.randint(1, 2)),
            "contract_end_at": None,
            "address_type": "marketplace_relay" if r.random() < 0.05 else "direct",
            "marketplace": None,
            "contacts": [
                {
                    "contact": contact,
                    "obtained_at_sale": r.random() < 0.9,
                    "optout_offered": r.random() < 0.85,
                    "optout_method": r.choices(
                        ("separate_optout_box", "link", "none", "terms_or_privacy_only"),
                        (60, 20, 10, 10),
                    )[0],
                    "optout_exercised": r.random() < 0.03,
                    "informed_of_calls": r.random() < 0.5,
                }
            ],
        }

    def signup(self, n: int) -> dict[str, Any]:
        r = self.rng
        event, contact = self.common("signup", n)
        if r.random() < 0.4:
            return event | {
                "kind": r.choice(("account_created", "info_request", "referral", "list_import")),
                "contact": contact,
                "subject_age": None,
            }
        channels = ["email"] if contact["type"] == "email" else ["sms", "whatsapp", "phone_live"]
        return event | {
            "kind": "consent",
            "contact": contact,
            "subject_age": r.choice((None, None, None, 15, 34)),
            "consent": {
                "consent_id": f"c{self.seq}",
                "channels": channels,
                "scope": r.sample(("newsletter", "offers", "telemarketing"), r.randint(1, 3)),
                "product_categories": [],
                "partners_named": [],
                "platforms": [],
                "named_legal_entity": event["legal_entity"],
                "mechanism": r.choices(
                    ("double_opt_in", "active_tick", "pre_ticked"), (60, 30, 10)
                )[0],
                "source": r.choices(("own_form", "import", "third_party_list"), (85, 10, 5))[0],
                "wording_version": "v3" if r.random() < 0.95 else None,
                "proof_ref": f"proof-{self.seq}",
                "period_end": None,
            },
        }

    def unsubscribe(self, n: int) -> dict[str, Any]:
        r = self.rng
        event, contact = self.common("unsubscribe", n)
        return event | {
            "kind": r.choices(
                ("unsubscribe", "objection", "consent_withdrawal", "erasure_request"),
                (70, 15, 10, 5),
            )[0],
            "contact": contact,
            "source": r.choice(("unsubscribe_link", "one_click", "reply_stop", "customer_service")),
            "consent_id": None,
            "list_id": None,
        }

    def send(self, n: int) -> dict[str, Any]:
        r = self.rng
        event, contact = self.common("send_request", n)
        channel = (
            "email" if contact["type"] == "email" else r.choice(("sms", "whatsapp", "phone_live"))
        )
        service = r.random() < 0.25
        dispatch = self.clock + timedelta(minutes=r.choice((0, 0, 5, 60)))
        return event | {
            "request_id": f"r{self.seq}",
            "contact": contact,
            "channel": channel,
            "declared_purpose": "service"
            if service
            else r.choice(("commercial", "commercial", "charitable")),
            "service_kind": r.choice(SERVICE_KINDS) if service else None,
            "relates_to_order_id": None,
            "content": {
                "content_scope": "telemarketing"
                if channel == "phone_live"
                else r.choice(("newsletter", "offers")),
                "has_promo": not service,
                "promo_categories": [] if service else r.sample(CATEGORIES, 1),
                "third_party_offer": None,
                "is_consent_request": r.random() < 0.01,
            },
            "sender": {
                "display_name": event["legal_entity"],
                "has_identity_block": True,
                "has_unsubscribe": r.random() < 0.98,
            },
            "recipient": {"kind": "legal_entity" if r.random() < 0.05 else "consumer"},
            "platform": None,
            "dispatch_at": dispatch.isoformat(),
            "campaign_id": None,
            "template_id": None,
        }

    def events(self, count: int) -> Iterator[dict[str, Any]]:
        makers = (self.send, self.order, self.signup, self.unsubscribe)
        weights = (70, 15, 10, 5)
        for maker in self.rng.choices(makers, weights, k=count):
            yield maker(self.rng.randrange(self.contacts))


CLOCK = time.process_time
"""CPU time of this process: the machine is shared, and every figure here is per core (a
busy neighbour stretches wall-clock time, not the work done)."""

CHUNK = 2_000
"""Events are decoded a chunk at a time right before they are timed, as a stream consumer
would see them: the event is fresh in cache, the contact state is not."""


class Phase:
    """Accumulated time of one phase over many chunks (optionally under the profiler)."""

    def __init__(self, label: str, profiler: Any = None) -> None:
        self.label = label
        self.count = 0
        self.seconds = 0.0
        self.profiler = profiler

    def run(self, work: Callable[[], int]) -> None:
        if self.profiler is not None:
            self.profiler.start()
        started = CLOCK()
        self.count += work()
        self.seconds += CLOCK() - started
        if self.profiler is not None:
            self.profiler.stop()

    def row(self) -> dict[str, Any]:
        return {
            "phase": self.label,
            "count": self.count,
            "seconds": round(self.seconds, 3),
            "per_second": round(self.count / self.seconds),
        }


Keyed = tuple[Event, tuple[tuple[Any, ContactPoint], ...]]


def decoded(raw: list[dict[str, Any]]) -> Iterator[list[Keyed]]:
    """Parse and fan out one chunk (untimed in the fold and decide phases)."""
    for start in range(0, len(raw), CHUNK):
        events = [parse_event(e) for e in raw[start : start + CHUNK]]
        yield [
            (e, tuple(((e.tenant, p.type, p.value), p) for p in contact_points(e))) for e in events
        ]


def state_codec(states: list[ContactState], sample: int = 20_000) -> dict[str, Any]:
    """Stored size and decode+encode time of the engine's contact states."""
    blobs = [encode_state(s) for s in states]
    timed = blobs[:sample]
    started = CLOCK()
    for blob in timed:
        encode_state(decode_state(blob))  # type: ignore[arg-type]
    seconds = CLOCK() - started
    sizes = sorted(len(b) for b in blobs)
    return {
        "states": len(blobs),
        "mean_bytes": round(statistics.fmean(sizes)),
        "p95_bytes": sizes[int(0.95 * (len(sizes) - 1))],
        "decode_encode_us": round(seconds / len(timed) * 1e6, 2),
    }


def scenario_file(repeat: int, directory: Path) -> tuple[Path, int]:
    """The shared scenarios, each copy under its own tenants (so none is a replay)."""
    scenarios = Path(os.environ.get("SENDGATE_SCENARIOS", "")) if os.environ.get(
        "SENDGATE_SCENARIOS"
    ) else Path(__file__).resolve().parent.parent.parent / "shared" / "scenarios"
    lines = [
        json.loads(line)
        for path in sorted(scenarios.glob("T*.jsonl"))
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    if not lines:
        raise SystemExit(f"no scenario files in {scenarios} (set SENDGATE_SCENARIOS)")
    target = directory / "scenarios-repeated.jsonl"
    with target.open("w", encoding="utf-8") as out:
        for copy in range(repeat):
            for event in lines:
                event = dict(event, tenant=f"{event.get('tenant', 'default')}~{copy}")
                out.write(json.dumps(event, ensure_ascii=False) + "\n")
    return target, repeat * len(lines)


def decide_ratio(repeat: int, rounds: int = 3) -> dict[str, Any]:
    """`sendgate decide`'s own `run` (stdout to a sink) against json.loads + json.dumps:
    the best of `rounds` interleaved passes of each, as the machine is shared (one pass of
    either, timed once, was seen 30 % slower while a neighbour ran)."""
    import argparse as _argparse

    from streams.commands.decide import run as decide_run

    plain = decide_seconds = float("inf")
    with tempfile.TemporaryDirectory(prefix="bench-core-") as tmp:
        path, count = scenario_file(repeat, Path(tmp))
        args = _argparse.Namespace(file=str(path), policy=None, dev_key=True)
        for _ in range(rounds):
            started = CLOCK()
            with path.open(encoding="utf-8") as source:
                sink = io.StringIO()
                for line in source:
                    sink.write(json.dumps(json.loads(line), ensure_ascii=False) + "\n")
            plain = min(plain, CLOCK() - started)
            sink = io.StringIO()
            threshold = gc.get_threshold()
            started = CLOCK()
            with contextlib.redirect_stdout(sink):
                code = decide_run(args)
            decide_seconds = min(decide_seconds, CLOCK() - started)
            gc.set_threshold(*threshold)
            if code != 0:
                raise SystemExit(f"sendgate decide exited {code} on the scenario file")
    return {
        "events": count,
        "rounds": rounds,
        "decisions": sink.getvalue().count("\n"),
        "json_pass_seconds": round(plain, 3),
        "decide_seconds": round(decide_seconds, 3),
        "ratio": round(decide_seconds / plain, 2),
        "decide_events_per_second": round(count / decide_seconds),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=120_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--tenants", type=int, default=5)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--profile", action="store_true", help="pyinstrument profile")
    parser.add_argument(
        "--decide-repeat",
        type=int,
        default=200,
        help="copies of the shared scenarios in the decide-ratio file (0 = skip)",
    )
    parser.add_argument(
        "--decide-rounds",
        type=int,
        default=3,
        help="interleaved passes of json and decide in the decide ratio (the best of each)",
    )
    parser.add_argument(
        "--tuned-gc",
        action="store_true",
        help="raise the GC thresholds (as a long-running worker holding many states in "
        "memory would)",
    )
    args = parser.parse_args()

    raw = list(Generator(args.contacts, args.tenants, args.seed).events(args.events))
    policy = Policy(similarity_families=tuple(frozenset(f) for f in FAMILIES))
    book = PolicyBook(default_policy=policy)
    profiler: Any = None
    if args.profile:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.0005)
    # The generated input is the harness's, not the system's: a consumer holds one batch
    # of bytes, not a million decoded dicts. Frozen, the collector's full passes scan
    # what the core allocates and keeps (states), not the workload.
    gc.collect()
    gc.freeze()
    if args.tuned_gc:
        gc.set_threshold(100_000, 50, 100)

    parse = Phase("parse")
    for start in range(0, len(raw), CHUNK):
        chunk = raw[start : start + CHUNK]
        parse.run(lambda chunk=chunk: len([parse_event(e) for e in chunk]))  # type: ignore[misc]

    empty = ContactState.empty()
    states: dict[Any, ContactState] = {}
    fold = Phase("fold")
    for chunk in decoded(raw):
        facts = [(e, points) for e, points in chunk if not isinstance(e, SendRequest)]

        def fold_chunk(facts: list[Keyed] = facts) -> int:
            folds = 0
            for event, points in facts:
                for key, point in points:
                    states[key] = apply(states.get(key, empty), event, point)
                    folds += 1
            return folds

        fold.run(fold_chunk)

    # Each request is decided against the state its contact had when it arrived (states
    # are immutable, so an untimed pass in arrival order just keeps a reference).
    as_of: dict[Any, ContactState] = {}
    as_of_states: list[ContactState] = []
    for chunk in decoded(raw):
        for event, points in chunk:
            if isinstance(event, SendRequest):
                as_of_states.append(as_of.get(points[0][0], empty))
                continue
            for key, point in points:
                as_of[key] = apply(as_of.get(key, empty), event, point)
    del as_of
    requests_with_state = iter(as_of_states)

    decisions = Phase("decide", profiler)
    for chunk in decoded(raw):
        requests = [(e, next(requests_with_state)) for e, _ in chunk if isinstance(e, SendRequest)]

        def decide_chunk(requests: list[tuple[Any, ContactState]] = requests) -> int:
            for request, state in requests:
                decide(state, request, policy)
            return len(requests)

        decisions.run(decide_chunk)

    # The fold and decide phases' states are the harness's leftovers: dropped, the
    # collector's passes during the engine phase scan the engine's own states only.
    contact_states = len(states)
    states.clear()
    as_of_states.clear()
    gc.collect()

    engine = DecisionEngine(book, SECRET)
    feed = Phase("engine", profiler)
    emitted = 0
    for start in range(0, len(raw), CHUNK):
        events = [parse_event(e) for e in raw[start : start + CHUNK]]

        def feed_chunk(events: list[Event] = events) -> int:
            nonlocal emitted
            for event in events:
                emitted += len(engine.feed(event))
            return len(events)

        feed.run(feed_chunk)
    if profiler is not None:
        print(profiler.output_text(unicode=True, color=False, show_all=False))
    rows = [parse.row(), fold.row(), decisions.row(), feed.row()]
    both = parse.seconds + feed.seconds
    rows.append(
        {
            "phase": "parse+engine",
            "count": feed.count,
            "seconds": round(both, 3),
            "per_second": round(feed.count / both),
        }
    )
    stored = state_codec(list(engine.states.values()))
    ratio = decide_ratio(args.decide_repeat, args.decide_rounds) if args.decide_repeat > 0 else None

    reasons = collections.Counter(
        str(d.reason_code) for s in engine.states.values() for d in s.decided.values()
    )
    result = {
        "benchmark": "core",
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "contacts": args.contacts,
        "tenants": args.tenants,
        "events": args.events,
        "chunk": CHUNK,
        "gc": "input frozen, tuned thresholds" if args.tuned_gc else "input frozen",
        "send_requests": decisions.count,
        "folds": fold.count,
        "contact_states": contact_states,
        "phases": rows,
        "decisions_per_second": rows[2]["per_second"],
        "folds_per_second": rows[1]["per_second"],
        "engine_events_per_second": rows[3]["per_second"],
        "engine_decisions_emitted": emitted,
        "parse_engine_events_per_second": rows[4]["per_second"],
        "events_per_contact": round(args.events / max(len(engine.states), 1), 1),
        "state": stored,
        "decide_vs_json": ratio,
        "reason_codes": dict(reasons.most_common()),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "core.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")

    print(
        f"sendgate core benchmark: {args.events:,} events, {contact_states:,} contact points, "
        f"{args.tenants} tenants, Python {platform.python_version()}"
    )
    print(f"{'phase':<8} {'count':>10} {'seconds':>9} {'per second':>12}")
    for row in rows:
        print(
            f"{row['phase']:<8} {row['count']:>10,} {row['seconds']:>9.2f} {row['per_second']:>12,}"
        )
    print(
        f"state    {stored['states']:,} contacts at {result['events_per_contact']} events "
        f"each: {stored['mean_bytes']:,} B mean ({stored['p95_bytes']:,} B p95), "
        f"decode+encode {stored['decode_encode_us']} us"
    )
    if ratio is not None:
        print(
            f"decide   {ratio['events']:,} scenario events: {ratio['decide_seconds']} s vs "
            f"json.loads+dumps {ratio['json_pass_seconds']} s = {ratio['ratio']}x, best of "
            f"{ratio['rounds']} "
            f"({ratio['decide_events_per_second']:,} events/s)"
        )
    print(f"results: {RESULTS / 'core.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
