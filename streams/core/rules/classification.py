"""Classification (contract §7 step 2): service or marketing.

R-CLASS-1 (service only when tied to an order/account/duty and free of promotion),
R-SERVICE-2 (a promotional element re-classifies a service message), R-CLASS-2 (ideal and
charitable messages are marketing like commercial ones), R-CLASS-3 (asking for consent is
itself marketing), OQ-7 (a review request with an incentive is marketing). The shop's
declared purpose alone is not trusted.
"""

from __future__ import annotations

from streams.core.enums import Purpose, Reason
from streams.core.model import SendRequest

_SERVICE = Purpose.SERVICE

RULE_IDS = ("R-SCOPE-1", "R-CLASS-1", "R-CLASS-2", "R-CLASS-3", "R-SERVICE-2")
REASON_CODES: tuple[Reason, ...] = ()
"""Classification decides nothing by itself; it routes to step 3 or step 4."""


def is_service(request: SendRequest) -> bool:
    """R-CLASS-1, R-SERVICE-2, R-CLASS-3, OQ-7: declared `service` with a `service_kind`
    and none of promo, third-party offer, consent request, incentivised review request."""
    if request.declared_purpose is not _SERVICE or request.service_kind is None:
        return False
    content = request.content
    return not (
        content.has_promo
        or content.third_party_offer is not None
        or content.is_consent_request
        or (content.is_review_request and content.review_incentive)
    )
