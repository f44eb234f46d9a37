"""A deterministic, realistic event feed for the demo and the end-to-end benchmark.

The mix follows what a shop produces: mostly send requests, then orders, signups and
unsubscribes (default 70/15/10/5 %), over `contacts` e-mail addresses and phone numbers
in several tenants. Every event is a contract-shaped dict (contract.md §2-§5), so the
same feed can be published to Kafka or given to `sendgate decide`.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

CATEGORIES = ("wandelschoenen", "jassen", "tenten", "rugzakken", "sokken", "koffie", "boeken")
ENTITIES = ("Bergop BV", "Bergop Outlet BV", "Koffiehuis BV")
CHANNELS_EMAIL = ("email",)
CHANNELS_PHONE = ("sms", "whatsapp", "phone_live")
SERVICE_KINDS = ("order_confirmation", "shipping_update", "invoice", "account_notice")


@dataclass(frozen=True)
class Mix:
    send_requests: float = 0.70
    orders: float = 0.15
    signups: float = 0.10
    unsubscribes: float = 0.05


def _ts(t: datetime) -> str:
    return t.isoformat()


class Workload:
    """Generates events with increasing event time, one second apart per tenant stream."""

    def __init__(
        self,
        *,
        contacts: int = 100_000,
        tenants: int = 4,
        seed: int = 7,
        mix: Mix = Mix(),
        start: datetime = datetime(2026, 11, 1, 9, 0, tzinfo=UTC),
        run_id: str = "w",
    ) -> None:
        self.contacts = contacts
        self.tenants = tenants
        self.rng = random.Random(seed)
        self.mix = mix
        self.clock = start
        self.run_id = run_id
        self.seq = 0

    def contact(self, n: int) -> tuple[str, dict[str, str]]:
        tenant = f"shop-{n % self.tenants}"
        if n % 5 == 4:
            return tenant, {"type": "phone", "value": f"+3161{n % 10_000_000:07d}"}
        return tenant, {"type": "email", "value": f"klant{n}@example.nl"}

    def _common(self, kind: str, tenant: str, entity: str) -> dict[str, Any]:
        self.seq += 1
        self.clock += timedelta(milliseconds=self.rng.randint(1, 200))
        return {
            "type": kind,
            "event_id": f"{self.run_id}-e{self.seq}",
            "occurred_at": _ts(self.clock),
            "tenant": tenant,
            "legal_entity": entity,
        }

    def order(self, n: int) -> dict[str, Any]:
        tenant, contact = self.contact(n)
        r = self.rng
        status = r.choices(("paid", "placed", "cancelled", "refunded", "abandoned"),
                           (80, 6, 4, 3, 7))[0]
        method = r.choices(("separate_optout_box", "link", "none", "terms_or_privacy_only"),
                           (60, 20, 10, 10))[0]
        return {
            **self._common("order", tenant, ENTITIES[n % 2]),
            "order_id": f"{self.run_id}-o{self.seq}",
            "kind": r.choices(("purchase", "subscription", "donation"), (90, 8, 2))[0],
            "status": status,
            "paid_amount_cents": r.randint(500, 30_000) if status != "abandoned" else 0,
            "product_categories": r.sample(CATEGORIES, r.randint(1, 2)),
            "contract_end_at": None,
            "recipient_kind": "consumer",
            "address_type": "marketplace_relay" if r.random() < 0.05 else "direct",
            "marketplace": None,
            "sold_by_phone": False,
            "confirmed_in_writing": False,
            "contacts": [{
                "contact": contact,
                "obtained_at_sale": r.random() < 0.9,
                "optout_offered": method != "none",
                "optout_method": method,
                "optout_exercised": r.random() < 0.05,
                "informed_of_calls": r.random() < 0.3,
            }],
        }

    def signup(self, n: int) -> dict[str, Any]:
        tenant, contact = self.contact(n)
        r = self.rng
        entity = ENTITIES[n % 2]
        channels = ["email"] if contact["type"] == "email" else ["sms", "whatsapp"]
        return {
            **self._common("signup", tenant, entity),
            "kind": "consent",
            "contact": contact,
            "recipient_kind": "consumer",
            "subject_age": None,
            "consent": {
                "consent_id": f"{self.run_id}-c{self.seq}",
                "channels": channels,
                "scope": r.sample(("newsletter", "offers", "updates"), r.randint(1, 2)),
                "product_categories": [],
                "partners_named": [],
                "platforms": [],
                "named_legal_entity": entity,
                "mechanism": r.choices(("double_opt_in", "active_tick", "pre_ticked"),
                                       (60, 30, 10))[0],
                "bundled_with_purchase": False,
                "given_by_subject": True,
                "parental_consent": False,
                "source": "own_form",
                "wording_version": "v3",
                "proof_ref": f"proof:{self.seq}",
                "period_end": None,
            },
        }

    def unsubscribe(self, n: int) -> dict[str, Any]:
        tenant, contact = self.contact(n)
        r = self.rng
        return {
            **self._common("unsubscribe", tenant, ENTITIES[n % 2]),
            "kind": r.choices(("unsubscribe", "objection", "consent_withdrawal"), (70, 20, 10))[0],
            "contact": contact,
            "channels": ["email"] if contact["type"] == "email" else ["sms"],
            "source": "unsubscribe_link" if contact["type"] == "email" else "reply_stop",
            "consent_id": None,
            "list_id": None,
        }

    def send_request(self, n: int) -> dict[str, Any]:
        tenant, contact = self.contact(n)
        r = self.rng
        service = r.random() < 0.25
        channel = "email" if contact["type"] == "email" else r.choice(CHANNELS_PHONE)
        return {
            **self._common("send_request", tenant, ENTITIES[n % 2]),
            "request_id": f"{self.run_id}-r{self.seq}",
            "contact": contact,
            "channel": channel,
            "declared_purpose": "service" if service else "commercial",
            "service_kind": r.choice(SERVICE_KINDS) if service else None,
            "relates_to_order_id": None,
            "requested_by_recipient": False,
            "content": {
                "content_scope": r.choice(("newsletter", "offers")),
                "has_promo": not service,
                "promo_categories": [] if service else [r.choice(CATEGORIES)],
                "third_party_offer": None,
                "is_consent_request": False,
                "is_review_request": False,
                "review_incentive": False,
            },
            "sender": {
                "display_name": ENTITIES[n % 2],
                "has_identity_block": True,
                "has_unsubscribe": True,
                "unsubscribe_requires_login": False,
                "cli_withheld": False,
                "sector": "other",
            },
            "recipient": {
                "kind": "consumer",
                "established_outside_eea": False,
                "address_published_for_purpose": False,
                "postfilter_registered": False,
            },
            "platform": None,
            "campaign_id": "demo",
            "template_id": None,
        }

    def events(self, count: int) -> Iterator[dict[str, Any]]:
        m = self.mix
        weights = (m.send_requests, m.orders, m.signups, m.unsubscribes)
        makers = (self.send_request, self.order, self.signup, self.unsubscribe)
        for _ in range(count):
            maker = self.rng.choices(makers, weights)[0]
            yield maker(self.rng.randrange(self.contacts))
