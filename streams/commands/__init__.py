"""Subcommands of `sendgate`; each module defines `register(parser)` and `run(args) -> int`."""
