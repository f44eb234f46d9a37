"""`sendgate decide [FILE|-]`: decide the send requests of a JSONL event file (contract §9).

Decisions go to stdout as JSONL, one per line, revocations included; rejected lines are
reported on stderr (line number, field, reason) and make the exit code 1.
"""

from __future__ import annotations

import argparse
import os


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "file", nargs="?", default="-", help="JSONL event file (default: standard input)"
    )
    parser.add_argument("--policy", metavar="FILE", help="policy TOML (default: contract §8)")
    parser.add_argument(
        "--dev-key",
        action="store_true",
        help="use the fixed development HMAC key when SENDGATE_HMAC_KEY is unset "
        "(same as SENDGATE_DEV_MODE=1; never for real data)",
    )


def run(args: argparse.Namespace) -> int:
    import gc
    import sys
    from datetime import UTC, datetime

    from streams.config import MissingSecret, hmac_key, policy_file
    from streams.core.engine import DecisionEngine
    from streams.core.jsonl import LineRejection, decide_lines
    from streams.core.parse import decision_json
    from streams.core.policy import PolicyBook, PolicyError
    from streams.policies import load_policy_book

    try:
        secret = hmac_key(allow_test_default=args.dev_key)
    except MissingSecret as exc:
        print(f"sendgate decide: {exc}", file=sys.stderr)
        return 2
    policy = args.policy or policy_file()
    try:
        policies = load_policy_book(policy) if policy else PolicyBook()
    except (OSError, PolicyError) as exc:
        print(f"sendgate decide: policy: {exc}", file=sys.stderr)
        return 2

    # The engine keeps many long-lived, acyclic state objects: with the default thresholds
    # the collector keeps rescanning them (about half the run time on large files).
    gc.set_threshold(100_000, 50, 100)
    engine = DecisionEngine(policies, secret)
    rejected = 0
    streaming = args.file == "-"
    try:
        # bytes that are not UTF-8 reach the line's JSON parse as lone surrogates and are
        # rejected there (bad_json, with the line number) instead of ending the run
        if streaming:
            sys.stdin.reconfigure(encoding="utf-8", errors="surrogateescape")  # type: ignore[union-attr]
            source = sys.stdin
        else:
            source = open(args.file, encoding="utf-8", errors="surrogateescape")  # noqa: SIM115
    except OSError as exc:
        print(f"sendgate decide: {exc}", file=sys.stderr)
        return 2
    try:
        with source:
            for item in decide_lines(source, engine):
                if isinstance(item, LineRejection):
                    rejected += 1
                    print(item.describe(), file=sys.stderr)
                    continue
                sys.stdout.write(decision_json(item, datetime.now(UTC)).decode() + "\n")
                if streaming:
                    sys.stdout.flush()
        sys.stdout.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    if rejected:
        print(f"sendgate decide: {rejected} line(s) rejected", file=sys.stderr)
        return 1
    return 0
