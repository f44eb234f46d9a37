"""`sendgate audit`: replay the input topics, re-decide, and compare with what was emitted.

Exit codes (for cron and CI): 0 nothing in a risk class; 2 at least one ALLOW→BLOCK
(sent without a basis) or missing decision; 1 the audit itself failed.

Window bounds (`--from`, `--to`): `beginning` / `end`, an RFC 3339 time (broker
timestamps, Kafka offsets_for_times), or explicit send-request offsets
`send-requests:0=15,send-requests:1=20` or `@window.json` (see streams/audit/window.py).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def register(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = (
        "examples:\n"
        "  sendgate audit --from 2026-11-01T00:00:00+01:00 --html audit.html --json audit.json\n"
        "  sendgate audit --from beginning --tenant shop-1 --policy soft-optin-12m.toml\n"
        "  sendgate audit --from @last.json --json last.json --emit   # cron: continue last run\n"
        "exit: 0 clean, 2 ALLOW→BLOCK or missing decisions found, 1 error"
    )
    p.add_argument(
        "--from",
        dest="start",
        default="beginning",
        metavar="BOUND",
        help="window start: beginning | RFC 3339 time | TOPIC:P=OFFSET,... | @FILE.json "
        "(default: beginning)",
    )
    p.add_argument(
        "--to",
        dest="stop",
        default="end",
        metavar="BOUND",
        help="window end (exclusive): end | RFC 3339 time | TOPIC:P=OFFSET,... | @FILE.json "
        "(default: end = the log end when the audit starts, minus --settle)",
    )
    p.add_argument(
        "--policy",
        type=Path,
        metavar="FILE",
        help="what-if: re-decide with this policy book (TOML) instead of the one in force "
        "($SENDGATE_POLICY_FILE or the defaults) and list what changes",
    )
    p.add_argument("--tenant", help="audit one tenant only")
    p.add_argument(
        "--json", dest="json_out", metavar="OUT", help="write the JSON report ('-' = stdout)"
    )
    p.add_argument(
        "--html", dest="html_out", metavar="OUT", help="write the self-contained HTML report"
    )
    p.add_argument(
        "--emit",
        action="store_true",
        help="publish findings (Avro AuditFinding) to sendgate.audit-findings",
    )
    p.add_argument(
        "--emit-agreeing",
        action="store_true",
        help="with --emit, publish agreeing requests too (default: only the differences)",
    )
    p.add_argument(
        "--topic-prefix",
        default=None,
        help="prefix of every topic name (as given to the worker; default "
        "$SENDGATE_TOPIC_PREFIX)",
    )
    p.add_argument(
        "--bootstrap", help="Kafka bootstrap servers (default $SENDGATE_KAFKA_BOOTSTRAP)"
    )
    progress = p.add_mutually_exclusive_group()
    progress.add_argument(
        "--progress",
        dest="progress",
        action="store_true",
        default=None,
        help="always draw the progress bar (default: only when stderr is a terminal)",
    )
    progress.add_argument("--no-progress", dest="progress", action="store_false")
    p.add_argument(
        "--settle",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="with --to end: leave out requests of the last SECONDS, which the worker may "
        "not have decided yet (default 30; 0 = up to the log end)",
    )
    p.add_argument(
        "--jobs",
        type=int,
        default=1,
        metavar="N",
        help="replay in N processes split by tenant (exact; faster with many tenants)",
    )
    p.add_argument(
        "--idle-timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="fail when a partition yields nothing for this long before its end offset",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no summary on stdout")


def _write_atomic(path: str, text: str) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(target)


def run(args: argparse.Namespace) -> int:
    import json
    from datetime import UTC, datetime

    from streams.audit.compare import EXIT_ERROR, text_summary
    from streams.audit.replay import (
        AuditOptions,
        ReplayError,
        emit_findings,
        finding_records,
        run_audit,
    )
    from streams.audit.report_html import render_html
    from streams.audit.window import WindowError, parse_bound
    from streams.codecs.registry import get_codec
    from streams.config import MissingSecret, Settings, hmac_key
    from streams.core.errors import RejectedRecord
    from streams.core.policy import PolicyBook
    from streams.policies import load_policy_book

    def fail(message: str) -> int:
        print(f"sendgate audit: error: {message}", file=sys.stderr)
        return EXIT_ERROR

    settings = Settings.from_env()
    bootstrap = args.bootstrap or settings.kafka_bootstrap
    prefix = settings.topic_prefix if args.topic_prefix is None else args.topic_prefix
    try:
        start = parse_bound(args.start, prefix=prefix, is_end=False)
        stop = parse_bound(args.stop, prefix=prefix, is_end=True)
        secret = hmac_key()
        if settings.policy_file:
            baseline, baseline_label = (
                load_policy_book(settings.policy_file),
                str(settings.policy_file),
            )
        else:
            baseline, baseline_label = PolicyBook(), "defaults (contract §8)"
        candidate = load_policy_book(args.policy) if args.policy else None
        codec = get_codec(settings)
    except (WindowError, MissingSecret) as exc:
        return fail(str(exc))
    except (OSError, ValueError) as exc:  # unreadable or invalid policy file
        return fail(f"{type(exc).__name__}: {exc}")

    opts = AuditOptions(
        bootstrap=bootstrap,
        codec=codec,
        secret=secret,
        baseline=baseline,
        baseline_label=baseline_label,
        start=start,
        stop=stop,
        topic_prefix=prefix,
        tenant=args.tenant,
        candidate=candidate,
        candidate_label=str(args.policy) if args.policy else None,
        progress=args.progress,
        emit=args.emit,
        jobs=max(1, args.jobs),
        settle_seconds=max(0.0, args.settle),
        settings=settings,
        idle_timeout=args.idle_timeout,
    )
    try:
        outcome = run_audit(opts)
    except ReplayError as exc:
        return fail(str(exc))
    except KeyboardInterrupt:
        return fail("interrupted")
    except Exception as exc:  # broker errors (KafkaException) and the like
        return fail(f"{type(exc).__name__}: {exc}")

    report = outcome.report
    emit_error: str | None = None
    if args.emit:
        from streams import topics as T
        from streams.core.model import RULEBOOK_VERSION

        topic = prefix + T.AUDIT_FINDINGS
        try:
            sent = emit_findings(
                bootstrap,
                topic,
                codec,
                finding_records(
                    outcome.comparison.findings,
                    outcome.run_id,
                    RULEBOOK_VERSION,
                    datetime.now(UTC),
                    include_agree=args.emit_agreeing,
                ),
                outcome.finding_keys,
            )
            report["emitted_findings"] = {"topic": topic, "count": sent}
        except (ReplayError, RejectedRecord) as exc:  # the reports are still written
            emit_error = f"--emit: {exc}"
            report["emitted_findings"] = {"topic": topic, "error": str(exc)}

    try:
        if args.json_out:
            text = json.dumps(report, indent=2, ensure_ascii=False, sort_keys=False) + "\n"
            if args.json_out == "-":
                sys.stdout.write(text)
            else:
                _write_atomic(args.json_out, text)
        if args.html_out:
            _write_atomic(args.html_out, render_html(report))
    except OSError as exc:
        return fail(f"cannot write report: {exc}")

    if not args.quiet and args.json_out != "-":
        print(text_summary(report))
        if args.emit and emit_error is None:
            print(f"findings published  {report['emitted_findings']['count']} to {topic}")
    if emit_error is not None:
        return fail(emit_error)
    code: int = report["exit_code"]
    return code
