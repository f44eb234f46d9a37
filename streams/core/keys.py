"""Contact normalisation and state keys (contract §1).

The state key is a keyed hash (HMAC-SHA256) of (tenant, type, normalised value): stored
keys never reveal the contact. The secret is a parameter; the shell reads it from
configuration (`streams.config.hmac_key`).
"""

from __future__ import annotations

import hmac
import unicodedata
from functools import lru_cache

import idna
import phonenumbers

from streams.core.enums import ContactType
from streams.core.errors import ContractError, Rejection
from streams.core.model import ContactPoint

DEFAULT_PHONE_REGION = "NL"


def _e164(value: str) -> str:
    try:
        number = phonenumbers.parse(value, DEFAULT_PHONE_REGION)
    except phonenumbers.NumberParseException as exc:
        raise ValueError(f"phone number: {exc}") from None
    if not phonenumbers.is_possible_number(number):
        raise ValueError("phone number: not a possible phone number")
    formatted: str = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return formatted


@lru_cache(maxsize=1 << 16)
def _ascii_domain(domain: str) -> str:
    """The IDNA ASCII form of a domain per UTS #46 (the `idna` package): `Bücher.de` and
    its NFD spelling become `xn--bcher-kva.de`; ValueError when it has none."""
    try:
        return idna.encode(domain, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError) as exc:
        raise ValueError(f"email domain: {str(exc) or 'not a valid domain'}") from None


def _email(value: str) -> str:
    """Contract v1.4 §1: trimmed, NFC, lower case, domain in IDNA ASCII form."""
    text = unicodedata.normalize("NFC", value.strip()).lower()
    if not text.isascii():
        text = unicodedata.normalize("NFC", text)
    local, at, domain = text.rpartition("@")
    if not at:
        return text
    return f"{local}@{_ascii_domain(domain)}"


_EMAIL = ContactType.EMAIL
_PHONE = ContactType.PHONE


@lru_cache(maxsize=1 << 17)
def _normal_point(kind: ContactType, value: str) -> ContactPoint:
    """The normalised point of (kind, value as written). Memoised: one event's point is
    normalised by the parser's check, the fan-out, the digest and the keys (the worker's
    admit path), and a contact's points repeat across its events. ValueError (not
    cached) when it has no normal form."""
    if kind is _EMAIL:
        normal = _email(value)
    elif kind is _PHONE:
        normal = _e164(value.strip())
    else:
        normal = value.strip()
    if not normal:
        raise ValueError("empty contact value")
    return ContactPoint(kind, normal)


def normalise(contact: ContactPoint, field: str = "contact.value") -> ContactPoint:
    """Email trimmed, NFC, lower-cased with its domain in IDNA ASCII form (UTS #46);
    phone to E.164 (default region NL); others trimmed. `contact` itself when it already
    is normalised.

    A phone number that cannot be normalised is a contract error: it could never be
    matched against its own suppressions (fail closed).
    """
    value = contact.value
    try:
        point = _normal_point(contact.type, value)
    except ValueError as exc:
        raise ContractError(Rejection.INVALID_VALUE, str(exc), field) from None
    return contact if point.value == value else point


def contact_key(secret: bytes, tenant: str, contact: ContactPoint) -> str:
    """Hex HMAC-SHA256 over `len(tenant):tenant|type|value` (normalised value); the length
    prefix keeps the parts unambiguous whatever characters the tenant contains, the type
    is one of five words and the value is the rest."""
    return normalised_contact_key(secret, tenant, normalise(contact))


def normalised_contact_key(secret: bytes, tenant: str, point: ContactPoint) -> str:
    """`contact_key` of a contact point that is already normalised."""
    message = f"{len(tenant)}:{tenant}|{point.type}|{point.value}"
    return hmac.digest(secret, message.encode("utf-8"), "sha256").hex()


def input_key(tenant: str, contact: ContactPoint) -> str:
    """Kafka key of input records: `tenant|type|normalised value`."""
    point = normalise(contact)
    return f"{tenant}|{point.type}|{point.value}"
