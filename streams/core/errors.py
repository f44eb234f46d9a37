"""Typed rejections shared by the codecs and the contract validator.

A rejected record goes to the dead-letter topic with `reason` as its machine-readable
reason code (non-negotiable 4: fail closed, lose nothing).
"""

from __future__ import annotations

from enum import StrEnum


class Rejection(StrEnum):
    TRUNCATED = "truncated"
    BAD_MAGIC = "bad_magic"
    UNKNOWN_FINGERPRINT = "unknown_fingerprint"
    SCHEMA_MISMATCH = "schema_mismatch"
    INVALID_ENUM = "invalid_enum"
    MISSING_FIELD = "missing_field"
    UNKNOWN_FIELD = "unknown_field"
    INVALID_VALUE = "invalid_value"
    BAD_TIMESTAMP = "bad_timestamp"
    OVERSIZE = "oversize"
    WRONG_KEY = "wrong_key"
    WRONG_TOPIC = "wrong_topic"
    BAD_JSON = "bad_json"
    PROCESSING_ERROR = "processing_error"
    CONFLICTING_DUPLICATE = "conflicting_duplicate"


class RejectedRecord(Exception):
    """A record that cannot be accepted; `field` is a dotted path or "" when unknown."""

    def __init__(self, reason: Rejection, message: str, field: str = "") -> None:
        super().__init__(f"{reason.value}: {field + ': ' if field else ''}{message}")
        self.reason = reason
        self.field = field
        self.message = message


class ContractError(RejectedRecord):
    """The record decoded but breaks contract.md (missing field, bad enum, bad timestamp...)."""


class DecodeError(RejectedRecord):
    """The bytes could not be decoded (truncated, bad magic, unknown fingerprint, ...)."""
