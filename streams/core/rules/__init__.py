"""Rule families of the gate, one module each (OPA-style: one family per module).

Every module declares `RULE_IDS` (rulebook ids it implements) and `REASON_CODES` (the
reason codes it can produce); each rule function names its rule ids in its docstring.
"""

from __future__ import annotations

from types import ModuleType

from streams.core.rules import (
    audience,
    b2b,
    classification,
    consent,
    form,
    phone,
    post,
    relay,
    service,
    soft_opt_in,
    suppression,
    third_party,
)

FAMILIES: tuple[ModuleType, ...] = (
    classification,
    relay,
    service,
    suppression,
    consent,
    soft_opt_in,
    third_party,
    b2b,
    phone,
    post,
    audience,
    form,
)
