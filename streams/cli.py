"""`sendgate` command line: one subcommand per module in streams/commands/."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# subcommand -> (module in streams.commands, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "decide": ("decide", "decide send requests in a JSONL event file (contract §9)"),
    "topics": ("topics", "create or describe the Kafka topics of the catalogue"),
    "worker": ("worker", "run the stream job (faust worker)"),
    "demo": ("demo", "publish a demo feed and print a live tally of decisions"),
    "publish": ("publish", "publish a JSONL event file to the input topics"),
    "audit": ("audit", "replay input topics and re-audit the emitted decisions"),
    "view": ("view", "Redis status view maintenance (rebuild)"),
    "status": ("status", "may we send this contact marketing now, and why?"),
    "status-server": ("status_server", "serve status lookups over HTTP (POST /v1/status)"),
    "export": ("export", "GDPR access report for one contact (R-DSR-1)"),
    "dispatch": ("dispatch", "ESP dispatcher: deliver approved sends when due, never revoked ones"),
    "acl": ("acl", "print or apply the Kafka ACLs of each role (least privilege)"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sendgate", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        try:
            mod = importlib.import_module(f"streams.commands.{module}")
        except ModuleNotFoundError as exc:
            if exc.name != f"streams.commands.{module}":
                raise
            continue
        p = sub.add_parser(name, help=help_text, description=help_text)
        mod.register(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    code: int = args._run(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
