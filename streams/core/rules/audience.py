"""Custom and lookalike audiences (contract §7 step 6, audiences).

R-AUDIENCE-1 (uploading identifiers to an ad platform needs a consent naming that use and
platform; no nearest-miss chain), R-AUDIENCE-2 (objectors, erased and relay records are
never uploaded: steps 1 and 4 take care of those).
"""

from __future__ import annotations

from streams.core.enums import Reason
from streams.core.rules.consent import COVERS, Staged
from streams.core.rules.context import Verdict

_ALLOW_CONSENT = Reason.ALLOW_CONSENT

RULE_IDS = ("R-AUDIENCE-1", "R-AUDIENCE-2")
REASON_CODES = (Reason.ALLOW_CONSENT, Reason.BLOCK_AUDIENCE_NO_SPECIFIC_CONSENT)

NO_SPECIFIC_CONSENT = Verdict(Reason.BLOCK_AUDIENCE_NO_SPECIFIC_CONSENT, ("R-AUDIENCE-1",))


def audience_verdict(staged: Staged) -> Verdict:
    """R-AUDIENCE-1: a covering consent (scope `custom_audience`, the request's platform
    listed; see consent.covers_request) → ALLOW_CONSENT, anything else → blocked."""
    evidence = tuple(consent.event_id for stage, consent in staged if stage == COVERS)
    if evidence:
        return Verdict(_ALLOW_CONSENT, ("R-AUDIENCE-1", "R-CONSENT-3"), evidence)
    return NO_SPECIFIC_CONSENT
