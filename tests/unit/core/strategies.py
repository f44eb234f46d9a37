"""Hypothesis strategies for random *valid* typed events (contract v1.4): any text where
the contract allows text, every enum member, absent/None optionals, millisecond instants
with random offsets, contact values of every type (international mailboxes included)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import strategies as st

from streams.core.enums import (
    ALL_CHANNELS,
    CONTACT_TYPES_OF_CHANNEL,
    AddressType,
    Channel,
    ConsentSource,
    ContactType,
    Mechanism,
    OptoutMethod,
    OrderKind,
    OrderStatus,
    Purpose,
    RecipientKind,
    Scope,
    Sector,
    ServiceKind,
    SignupKind,
    UnsubscribeKind,
    UnsubscribeSource,
)
from streams.core.model import (
    ContactFact,
    ContactPoint,
    Content,
    Event,
    Order,
    Recipient,
    Sender,
    SendRequest,
    Signup,
    SignupConsent,
    Unsubscribe,
)

TEXT = st.text(max_size=12)
NAME = st.text(min_size=1, max_size=12)
OPTIONAL_TEXT = st.none() | TEXT
IDS = st.text(alphabet="abcde-1234", min_size=1, max_size=6)
"""Ids from a small alphabet, so that histories repeat them."""

_EPOCH = datetime(2024, 1, 1, tzinfo=UTC)
_OFFSETS = st.sampled_from([0, 60, 120, -300, 330, 765, -600])


@st.composite
def instants(draw: st.DrawFn) -> datetime:
    """A millisecond instant in 2024-2027, written with some UTC offset."""
    millis = draw(st.integers(0, 3 * 365 * 86_400_000))
    offset = timezone(timedelta(minutes=draw(_OFFSETS)))
    return (_EPOCH + timedelta(milliseconds=millis)).astimezone(offset)


EMAILS = st.builds(
    "{}@{}".format,
    st.sampled_from(["jan", "Anna.de.Vries", "élodie", "ÉLODIE", "x+tag", "j"]),
    st.sampled_from(["example.nl", "Bücher.de", "xn--bcher-kva.de", "EXAMPLE.com", "bü.example"]),
)
PHONES = st.sampled_from(["06 12345678", "+31612345678", "0031 6 87654321", "+32 470 12 34 56"])
OTHER_VALUES = st.text(min_size=1, max_size=10).filter(lambda v: v.strip() != "")


def contact_points(kinds: frozenset[ContactType] | None = None) -> st.SearchStrategy[ContactPoint]:
    allowed = sorted(kinds or ContactType)
    return st.sampled_from(allowed).flatmap(
        lambda kind: st.builds(
            ContactPoint,
            st.just(kind),
            EMAILS
            if kind is ContactType.EMAIL
            else PHONES
            if kind is ContactType.PHONE
            else OTHER_VALUES,
        )
    )


def _common() -> dict[str, Any]:
    return {
        "event_id": IDS,
        "occurred_at": instants(),
        "tenant": st.sampled_from(["default", "t-1", "ténant"]),
        "legal_entity": st.sampled_from(["Shop BV", "Zus BV", "Ünïcode GmbH"]),
    }


def enum_tuple(cls: Any, **kw: Any) -> st.SearchStrategy[tuple[Any, ...]]:
    return st.lists(st.sampled_from(list(cls)), **kw).map(tuple)


TEXTS = st.lists(TEXT, max_size=3).map(tuple)

contact_facts = st.builds(
    ContactFact,
    contact=contact_points(),
    obtained_at_sale=st.booleans(),
    optout_offered=st.booleans(),
    optout_method=st.sampled_from(list(OptoutMethod)),
    optout_exercised=st.booleans(),
    informed_of_calls=st.booleans(),
)

orders = st.builds(
    Order,
    **_common(),
    order_id=IDS,
    kind=st.sampled_from(list(OrderKind)),
    status=st.sampled_from(list(OrderStatus)),
    product_categories=TEXTS,
    contract_end_at=st.none() | instants(),
    marketplace=OPTIONAL_TEXT,
    contacts=st.lists(contact_facts, min_size=1, max_size=3).map(tuple),
    paid_amount_cents=st.integers(0, 2**31 - 1),
    recipient_kind=st.sampled_from(list(RecipientKind)),
    address_type=st.sampled_from(list(AddressType)),
    sold_by_phone=st.booleans(),
    confirmed_in_writing=st.booleans(),
)

signup_consents = st.builds(
    SignupConsent,
    consent_id=NAME,
    channels=enum_tuple(Channel, max_size=4),
    scope=enum_tuple(Scope, max_size=3),
    product_categories=TEXTS,
    partners_named=TEXTS,
    platforms=TEXTS,
    named_legal_entity=NAME,
    mechanism=st.sampled_from(list(Mechanism)),
    source=st.sampled_from(list(ConsentSource)),
    wording_version=OPTIONAL_TEXT,
    proof_ref=OPTIONAL_TEXT,
    period_end=st.none() | instants(),
    bundled_with_purchase=st.booleans(),
    given_by_subject=st.booleans(),
    parental_consent=st.booleans(),
)


@st.composite
def signups(draw: st.DrawFn) -> Signup:
    kind = draw(st.sampled_from(list(SignupKind)))
    return draw(
        st.builds(
            Signup,
            **_common(),
            kind=st.just(kind),
            contact=contact_points(),
            subject_age=st.none() | st.integers(0, 120),
            consent=signup_consents if kind is SignupKind.CONSENT else st.none(),
            recipient_kind=st.sampled_from(list(RecipientKind)),
        )
    )


@st.composite
def unsubscribes(draw: st.DrawFn) -> Unsubscribe:
    common = {name: draw(strategy) for name, strategy in _common().items()}
    channels = draw(st.none() | enum_tuple(Channel, max_size=4))
    if channels is not None and frozenset(channels) == ALL_CHANNELS:
        channels = tuple(Channel)
    return Unsubscribe(
        **common,
        kind=draw(st.sampled_from(list(UnsubscribeKind))),
        contact=draw(contact_points()),
        channels=channels,
        source=draw(st.sampled_from(list(UnsubscribeSource))),
        consent_id=draw(OPTIONAL_TEXT),
        list_id=draw(OPTIONAL_TEXT),
        received_at=draw(st.just(common["occurred_at"]) | instants()),
        linked_contacts=tuple(draw(st.lists(contact_points(), max_size=2))),
    )


@st.composite
def send_requests(draw: st.DrawFn, channels: list[Channel] | None = None) -> SendRequest:
    common = {name: draw(strategy) for name, strategy in _common().items()}
    channel = draw(st.sampled_from(channels or list(Channel)))
    return SendRequest(
        **common,
        request_id=draw(IDS),
        contact=draw(contact_points(CONTACT_TYPES_OF_CHANNEL[channel])),
        channel=channel,
        declared_purpose=draw(st.sampled_from(list(Purpose))),
        service_kind=draw(st.none() | st.sampled_from(list(ServiceKind))),
        relates_to_order_id=draw(OPTIONAL_TEXT),
        content=draw(
            st.builds(
                Content,
                content_scope=st.sampled_from(list(Scope)),
                has_promo=st.booleans(),
                promo_categories=TEXTS,
                third_party_offer=OPTIONAL_TEXT,
                is_consent_request=st.booleans(),
                is_review_request=st.booleans(),
                review_incentive=st.booleans(),
            )
        ),
        sender=draw(
            st.builds(
                Sender,
                display_name=TEXT,
                has_identity_block=st.booleans(),
                has_unsubscribe=st.booleans(),
                unsubscribe_requires_login=st.booleans(),
                cli_withheld=st.booleans(),
                sector=st.sampled_from(list(Sector)),
            )
        ),
        recipient=draw(
            st.builds(
                Recipient,
                kind=st.sampled_from(list(RecipientKind)),
                established_outside_eea=st.booleans(),
                address_published_for_purpose=st.booleans(),
                postfilter_registered=st.booleans(),
            )
        ),
        platform=draw(OPTIONAL_TEXT),
        dispatch_at=draw(st.just(common["occurred_at"]) | instants()),
        campaign_id=draw(OPTIONAL_TEXT),
        template_id=draw(OPTIONAL_TEXT),
        requested_by_recipient=draw(st.booleans()),
    )


events: st.SearchStrategy[Event] = st.one_of(orders, signups(), unsubscribes(), send_requests())
