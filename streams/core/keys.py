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


@lru_cache(maxsize=1 << 17)
def _e164(value: str) -> str:
    try:
        number = phonenumbers.parse(value, DEFAULT_PHONE_REGION)
    except phonenumbers.NumberParseException as exc:
        raise ValueError(str(exc)) from None
    if not phonenumbers.is_possible_number(number):
        raise ValueError("not a possible phone number")
    formatted: str = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return formatted


@lru_cache(maxsize=1 << 16)
def _ascii_domain(domain: str) -> str:
    """The IDNA ASCII form of a domain per UTS #46 (the `idna` package): `Bücher.de` and
    its NFD spelling become `xn--bcher-kva.de`; ValueError when it has none."""
    try:
        return idna.encode(domain, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError) as exc:
        raise ValueError(str(exc) or "not a valid domain") from None


@lru_cache(maxsize=1 << 17)
def _email(value: str) -> str:
    """Contract v1.4 §1: trimmed, NFC, lower case, domain in IDNA ASCII form."""
    text = unicodedata.normalize("NFC", value.strip()).lower()
    if not text.isascii():
        text = unicodedata.normalize("NFC", text)
    local, at, domain = text.rpartition("@")
    if not at:
        return text
    return f"{local}@{_ascii_domain(domain)}"


def normalise(contact: ContactPoint, field: str = "contact.value") -> ContactPoint:
    """Email trimmed, NFC, lower-cased with its domain in IDNA ASCII form (UTS #46);
    phone to E.164 (default region NL); others trimmed.

    A phone number that cannot be normalised is a contract error: it could never be
    matched against its own suppressions (fail closed).
    """
    kind = contact.type
    if kind is ContactType.EMAIL:
        try:
            value = _email(contact.value)
        except ValueError as exc:
            raise ContractError(Rejection.INVALID_VALUE, f"email domain: {exc}", field) from None
    elif kind is ContactType.PHONE:
        try:
            value = _e164(contact.value.strip())
        except ValueError as exc:
            raise ContractError(Rejection.INVALID_VALUE, f"phone number: {exc}", field) from None
    else:
        value = contact.value.strip()
    if not value:
        raise ContractError(Rejection.INVALID_VALUE, "empty contact value", field)
    if value == contact.value:
        return contact
    return ContactPoint(kind, value)


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
