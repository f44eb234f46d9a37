"""Contract §1 normalisation and the HMAC state keys."""

from __future__ import annotations

import unicodedata

import pytest

from streams.core.enums import ContactType
from streams.core.errors import ContractError, Rejection
from streams.core.keys import contact_key, input_key, normalise
from streams.core.model import ContactPoint


@pytest.mark.parametrize(
    ("kind", "raw", "expected"),
    [
        (ContactType.EMAIL, "  Anna.De.Vries@Example.NL ", "anna.de.vries@example.nl"),
        (ContactType.PHONE, "06 12345678", "+31612345678"),
        (ContactType.PHONE, "+31 (0)6-1234 5678", "+31612345678"),
        (ContactType.PHONE, "0031612345678", "+31612345678"),
        (ContactType.PHONE, "+32 470 12 34 56", "+32470123456"),
        (ContactType.POSTAL, "  Dorpsstraat 1, Ergens ", "Dorpsstraat 1, Ergens"),
        (ContactType.DEVICE, " ios:ABC ", "ios:ABC"),
    ],
)
def test_normalise(kind: ContactType, raw: str, expected: str) -> None:
    assert normalise(ContactPoint(kind, raw)) == ContactPoint(kind, expected)


@pytest.mark.parametrize("raw", ["12", "not a number", "   "])
def test_unusable_phone_numbers_are_contract_errors(raw: str) -> None:
    with pytest.raises(ContractError) as err:
        normalise(ContactPoint(ContactType.PHONE, raw))
    assert err.value.reason is Rejection.INVALID_VALUE


def test_contact_key_is_a_keyed_hash_of_the_normalised_triple() -> None:
    point = ContactPoint(ContactType.PHONE, "06 12345678")
    key = contact_key(b"secret", "t1", point)
    assert len(key) == 64 and int(key, 16) >= 0
    assert key == contact_key(b"secret", "t1", ContactPoint(ContactType.PHONE, "+31612345678"))
    assert "612345678" not in key
    assert key != contact_key(b"other", "t1", point)
    assert key != contact_key(b"secret", "t2", point)
    email = ContactPoint(ContactType.EMAIL, "+31612345678")
    assert key != contact_key(b"secret", "t1", email)


def test_separators_in_parts_cannot_collide() -> None:
    first = contact_key(b"k", "a|email", ContactPoint(ContactType.EMAIL, "x"))
    second = contact_key(b"k", "a", ContactPoint(ContactType.EMAIL, "email|x"))
    assert first != second


def test_input_key() -> None:
    point = ContactPoint(ContactType.EMAIL, " A@B.nl")
    assert input_key("t1", point) == "t1|email|a@b.nl"


_NFD = unicodedata.normalize("NFD", "Jan@Bücher.de")


@pytest.mark.parametrize(
    "raw", ["Jan@Bücher.de", "jan@xn--bcher-kva.de", _NFD, " JAN@BÜCHER.DE ", "jan@bücher.de"]
)
def test_every_spelling_of_an_international_mailbox_is_one_contact_point(raw: str) -> None:
    """Contract v1.4 §1: NFC, lower case, IDNA ASCII domain (UTS #46)."""
    assert _NFD != "Jan@Bücher.de"
    point = normalise(ContactPoint(ContactType.EMAIL, raw))
    assert point.value == "jan@xn--bcher-kva.de"
    assert contact_key(b"k", "t", ContactPoint(ContactType.EMAIL, raw)) == contact_key(
        b"k", "t", ContactPoint(ContactType.EMAIL, "jan@xn--bcher-kva.de")
    )
    assert input_key("t", ContactPoint(ContactType.EMAIL, raw)) == "t|email|jan@xn--bcher-kva.de"


def test_unicode_local_part_is_nfc_and_lower_case() -> None:
    raw = unicodedata.normalize("NFD", "ÉLODIE@Example.fr")
    assert normalise(ContactPoint(ContactType.EMAIL, raw)).value == "élodie@example.fr"


@pytest.mark.parametrize("raw", ["a@exa_mple.com", "a@-bad-.nl", "a@xn--zz.de", "a@b..nl", "a@"])
def test_an_email_domain_without_idna_form_is_an_invalid_value(raw: str) -> None:
    with pytest.raises(ContractError) as err:
        normalise(ContactPoint(ContactType.EMAIL, raw))
    assert (err.value.reason, err.value.field) == (Rejection.INVALID_VALUE, "contact.value")
