"""Third-party data and content.

R-THIRDPARTY-1 (bought, rented or co-registered data needs a consent naming this sender,
with proof), R-THIRDPARTY-2 (offers for another company are outside the customer
exception), R-THIRDPARTY-3 (addresses entered by another person carry no consent).
"""

from __future__ import annotations

from streams.core.enums import ConsentSource, Reason, SignupKind
from streams.core.model import ConsentFact
from streams.core.rules.context import RequestContext, Verdict

RULE_IDS = ("R-THIRDPARTY-1", "R-THIRDPARTY-2", "R-THIRDPARTY-3")
REASON_CODES = (
    Reason.BLOCK_THIRD_PARTY_LIST,
    Reason.BLOCK_THIRD_PARTY_CONTENT,
    Reason.BLOCK_CONSENT_BY_OTHER_PERSON,
)

_BLOCK_CONSENT_BY_OTHER_PERSON = Reason.BLOCK_CONSENT_BY_OTHER_PERSON
_BLOCK_THIRD_PARTY_LIST = Reason.BLOCK_THIRD_PARTY_LIST
_LIST_IMPORT = SignupKind.LIST_IMPORT
_REFERRAL = SignupKind.REFERRAL

LIST_RULES = ("R-THIRDPARTY-1",)
CONTENT_RULES = ("R-THIRDPARTY-2", "R-SOFTOPTIN-1")
REFERRAL_RULES = ("R-THIRDPARTY-3", "R-CONSENT-9")
_THIRD_PARTY_LIST = ConsentSource.THIRD_PARTY_LIST


def list_consent_fails(consent: ConsentFact, sender: str) -> bool:
    """R-THIRDPARTY-1 (contract §3): a `third_party_list` consent counts only when it names
    the sending entity and its proof is at hand. `import` is the entity's own legacy data
    and gets the ordinary checks."""
    return consent.source is _THIRD_PARTY_LIST and (
        consent.named_legal_entity != sender or not consent.proof_ref
    )


def prospect_source_miss(ctx: RequestContext) -> Verdict | None:
    """Contract §7 step 6 (c), first two: a referral signup (R-THIRDPARTY-3) or a list
    import (R-THIRDPARTY-1) explains the missing basis."""
    if not ctx.touchpoints:
        return None
    referrals = tuple(t.event_id for t in ctx.touchpoints if t.kind is _REFERRAL)
    if referrals:
        return Verdict(_BLOCK_CONSENT_BY_OTHER_PERSON, REFERRAL_RULES, referrals)
    imports = tuple(t.event_id for t in ctx.touchpoints if t.kind is _LIST_IMPORT)
    if imports:
        return Verdict(_BLOCK_THIRD_PARTY_LIST, LIST_RULES, imports)
    return None
