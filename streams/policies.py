"""Policy files for the shell: the core parses policy text, this reads it from disk."""

from __future__ import annotations

from pathlib import Path

from streams.core.policy import PolicyBook, parse_policy_book


def load_policy_book(path: str | Path) -> PolicyBook:
    """Read and parse a TOML policy file (contract §8); PolicyError on any unknown or
    malformed setting."""
    return parse_policy_book(Path(path).read_text(encoding="utf-8"), str(path))
