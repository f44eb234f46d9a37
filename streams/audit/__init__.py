"""Replay and re-audit (issue 6): re-decide the send requests of a window and compare.

`compare` and `report_html` are pure (unit-tested without a broker); `replay` reads the
real topics; `streams.commands.audit` is the CLI shell around them.
"""
