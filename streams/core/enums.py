"""Every enum of contract.md v1.3, plus the channel tables of contract §1.

Values are the exact strings of the contract, so `Channel("sms")` parses a JSON field and
`str(member)` writes it back.
"""

from __future__ import annotations

from enum import StrEnum


class EventType(StrEnum):
    ORDER = "order"
    SIGNUP = "signup"
    UNSUBSCRIBE = "unsubscribe"
    SEND_REQUEST = "send_request"


class ContactType(StrEnum):
    EMAIL = "email"
    PHONE = "phone"
    POSTAL = "postal"
    DEVICE = "device"
    SOCIAL = "social"


class Channel(StrEnum):
    EMAIL = "email"
    SMS = "sms"
    WHATSAPP = "whatsapp"
    SOCIAL_DM = "social_dm"
    PUSH = "push"
    IN_APP = "in_app"
    PHONE_LIVE = "phone_live"
    PHONE_AUTOMATED = "phone_automated"
    FAX = "fax"
    POST = "post"
    CUSTOM_AUDIENCE = "custom_audience"
    LOOKALIKE_AUDIENCE = "lookalike_audience"


class OrderKind(StrEnum):
    PURCHASE = "purchase"
    DONATION = "donation"
    SUBSCRIPTION = "subscription"


class OrderStatus(StrEnum):
    PAID = "paid"
    PLACED = "placed"
    CANCELLED = "cancelled"
    REFUNDED = "refunded"
    ABANDONED = "abandoned"


class RecipientKind(StrEnum):
    CONSUMER = "consumer"
    NATURAL_PERSON_BUSINESS = "natural_person_business"
    LEGAL_ENTITY = "legal_entity"


class AddressType(StrEnum):
    DIRECT = "direct"
    MARKETPLACE_RELAY = "marketplace_relay"


class OptoutMethod(StrEnum):
    UNTICKED_OPTIN_BOX = "unticked_optin_box"
    PRE_TICKED_BOX_REMOVABLE = "pre_ticked_box_removable"
    SEPARATE_OPTOUT_BOX = "separate_optout_box"
    LINK = "link"
    NONE = "none"
    TERMS_OR_PRIVACY_ONLY = "terms_or_privacy_only"


class SignupKind(StrEnum):
    CONSENT = "consent"
    ACCOUNT_CREATED = "account_created"
    FREE_TRIAL = "free_trial"
    INFO_REQUEST = "info_request"
    QUOTE_REQUEST = "quote_request"
    CONTEST = "contest"
    SURVEY = "survey"
    PETITION = "petition"
    VOLUNTEER = "volunteer"
    EVENT_ATTENDANCE = "event_attendance"
    REFERRAL = "referral"
    LIST_IMPORT = "list_import"


class Scope(StrEnum):
    NEWSLETTER = "newsletter"
    OFFERS = "offers"
    UPDATES = "updates"
    APPEALS = "appeals"
    PARTNER_OFFERS = "partner_offers"
    CUSTOM_AUDIENCE = "custom_audience"
    TELEMARKETING = "telemarketing"
    PLATFORM_MESSAGING = "platform_messaging"


class Mechanism(StrEnum):
    ACTIVE_TICK = "active_tick"
    TYPED_YES = "typed_yes"
    DOUBLE_OPT_IN = "double_opt_in"
    RECORDED_VERBAL_YES = "recorded_verbal_yes"
    PRE_TICKED = "pre_ticked"
    TERMS_CLAUSE = "terms_clause"
    PRIVACY_STATEMENT = "privacy_statement"
    INFERRED = "inferred"


class ConsentSource(StrEnum):
    OWN_FORM = "own_form"
    CO_REGISTRATION = "co_registration"
    THIRD_PARTY_LIST = "third_party_list"
    IMPORT = "import"
    MARKETPLACE = "marketplace"
    CUSTOMER_SERVICE = "customer_service"


class UnsubscribeKind(StrEnum):
    UNSUBSCRIBE = "unsubscribe"
    OBJECTION = "objection"
    CONSENT_WITHDRAWAL = "consent_withdrawal"
    ERASURE_REQUEST = "erasure_request"
    ERASURE_COMPLETED = "erasure_completed"


class UnsubscribeSource(StrEnum):
    UNSUBSCRIBE_LINK = "unsubscribe_link"
    ONE_CLICK = "one_click"
    REPLY_STOP = "reply_stop"
    PHONE_RVV = "phone_rvv"
    CUSTOMER_SERVICE = "customer_service"
    GDPR_ART21_REQUEST = "gdpr_art21_request"
    COMPLAINT = "complaint"
    PREFERENCE_CENTRE = "preference_centre"
    CHECKOUT_OPTOUT = "checkout_optout"
    GDPR_ART17_REQUEST = "gdpr_art17_request"


class Purpose(StrEnum):
    SERVICE = "service"
    COMMERCIAL = "commercial"
    IDEAL = "ideal"
    CHARITABLE = "charitable"


class ServiceKind(StrEnum):
    ORDER_CONFIRMATION = "order_confirmation"
    PAYMENT_CONFIRMATION = "payment_confirmation"
    SHIPPING_UPDATE = "shipping_update"
    DELIVERY_APPOINTMENT = "delivery_appointment"
    DELIVERY_PROBLEM = "delivery_problem"
    INVOICE = "invoice"
    RETURN_OR_WARRANTY = "return_or_warranty"
    CUSTOMER_QUESTION_REPLY = "customer_question_reply"
    ACCOUNT_NOTICE = "account_notice"
    CONTRACT_CHANGE = "contract_change"
    SECURITY_NOTICE = "security_notice"
    RECALL = "recall"
    LEGAL_NOTICE = "legal_notice"
    BROADCAST = "broadcast"
    CONTRACT_WELCOME = "contract_welcome"


class Sector(StrEnum):
    CHARITY = "charity"
    CHARITY_LOTTERY = "charity_lottery"
    PRESS_PUBLISHER = "press_publisher"
    OTHER = "other"


class Outcome(StrEnum):
    ALLOW = "ALLOW"
    BLOCK = "BLOCK"


class Reason(StrEnum):
    """Reason codes of rulebook §2 (contract §6)."""

    ALLOW_SERVICE_MESSAGE = "ALLOW_SERVICE_MESSAGE"
    ALLOW_CONSENT = "ALLOW_CONSENT"
    ALLOW_SOFT_OPT_IN = "ALLOW_SOFT_OPT_IN"
    ALLOW_DONOR_RELATION = "ALLOW_DONOR_RELATION"
    ALLOW_RELAY_ORDER_EXECUTION = "ALLOW_RELAY_ORDER_EXECUTION"
    ALLOW_B2B_PUBLISHED_ADDRESS = "ALLOW_B2B_PUBLISHED_ADDRESS"
    ALLOW_B2B_NON_EEA = "ALLOW_B2B_NON_EEA"
    ALLOW_B2B_PHONE_OPT_OUT = "ALLOW_B2B_PHONE_OPT_OUT"
    ALLOW_PHONE_CUSTOMER_RELATION = "ALLOW_PHONE_CUSTOMER_RELATION"
    ALLOW_POST_LEGIT_INTEREST = "ALLOW_POST_LEGIT_INTEREST"
    BLOCK_NO_LEGAL_BASIS = "BLOCK_NO_LEGAL_BASIS"
    BLOCK_OBJECTION = "BLOCK_OBJECTION"
    BLOCK_LATE_OBJECTION = "BLOCK_LATE_OBJECTION"
    BLOCK_CONSENT_WITHDRAWN = "BLOCK_CONSENT_WITHDRAWN"
    BLOCK_CONSENT_INVALID_MECHANISM = "BLOCK_CONSENT_INVALID_MECHANISM"
    BLOCK_CONSENT_SCOPE = "BLOCK_CONSENT_SCOPE"
    BLOCK_CONSENT_UNPROVABLE = "BLOCK_CONSENT_UNPROVABLE"
    BLOCK_CONSENT_EXPIRED = "BLOCK_CONSENT_EXPIRED"
    BLOCK_CONSENT_BY_OTHER_PERSON = "BLOCK_CONSENT_BY_OTHER_PERSON"
    BLOCK_MINOR_NO_PARENTAL_CONSENT = "BLOCK_MINOR_NO_PARENTAL_CONSENT"
    BLOCK_NOT_A_CUSTOMER = "BLOCK_NOT_A_CUSTOMER"
    BLOCK_NOT_SIMILAR = "BLOCK_NOT_SIMILAR"
    BLOCK_NO_OPTOUT_AT_COLLECTION = "BLOCK_NO_OPTOUT_AT_COLLECTION"
    BLOCK_CONTACT_NOT_FROM_SALE = "BLOCK_CONTACT_NOT_FROM_SALE"
    BLOCK_RELATION_EXPIRED = "BLOCK_RELATION_EXPIRED"
    BLOCK_OTHER_LEGAL_ENTITY = "BLOCK_OTHER_LEGAL_ENTITY"
    BLOCK_THIRD_PARTY_CONTENT = "BLOCK_THIRD_PARTY_CONTENT"
    BLOCK_THIRD_PARTY_LIST = "BLOCK_THIRD_PARTY_LIST"
    BLOCK_MISSING_UNSUBSCRIBE = "BLOCK_MISSING_UNSUBSCRIBE"
    BLOCK_MISSING_SENDER_IDENTITY = "BLOCK_MISSING_SENDER_IDENTITY"
    BLOCK_SENDER_MISMATCH = "BLOCK_SENDER_MISMATCH"
    BLOCK_RELAY_ADDRESS_NON_ORDER = "BLOCK_RELAY_ADDRESS_NON_ORDER"
    BLOCK_RELAY_REVIEW_REQUEST_SEPARATE = "BLOCK_RELAY_REVIEW_REQUEST_SEPARATE"
    BLOCK_AUDIENCE_NO_SPECIFIC_CONSENT = "BLOCK_AUDIENCE_NO_SPECIFIC_CONSENT"
    BLOCK_PHONE_NO_CONSENT = "BLOCK_PHONE_NO_CONSENT"
    BLOCK_PHONE_CUSTOMER_EXCEPTION_ENDED = "BLOCK_PHONE_CUSTOMER_EXCEPTION_ENDED"
    BLOCK_PHONE_ANONYMOUS_CLI = "BLOCK_PHONE_ANONYMOUS_CLI"
    BLOCK_CONTRACT_NEEDS_WRITTEN_CONFIRMATION = "BLOCK_CONTRACT_NEEDS_WRITTEN_CONFIRMATION"
    BLOCK_POST_POSTFILTER = "BLOCK_POST_POSTFILTER"
    BLOCK_ERASED = "BLOCK_ERASED"
    BLOCK_REPERMISSION_TO_SUPPRESSED = "BLOCK_REPERMISSION_TO_SUPPRESSED"
    BLOCK_PLATFORM_OPT_IN_MISSING = "BLOCK_PLATFORM_OPT_IN_MISSING"
    BLOCK_SERVICE_NO_ACTIVE_RELATIONSHIP = "BLOCK_SERVICE_NO_ACTIVE_RELATIONSHIP"

    @property
    def outcome(self) -> Outcome:
        return Outcome.ALLOW if self.startswith("ALLOW_") else Outcome.BLOCK


class LegalBasis(StrEnum):
    """Legal-basis labels of rulebook §0.1."""

    TW117_CONSENT = "TW117_CONSENT"
    TW117_CUSTOMER = "TW117_CUSTOMER"
    TW117_B2B_PUBLISHED = "TW117_B2B_PUBLISHED"
    TW117_B2B_NON_EEA = "TW117_B2B_NON_EEA"
    TW117_TM_CONSENT = "TW117_TM_CONSENT"
    TW117_TM_CUSTOMER = "TW117_TM_CUSTOMER"
    TW117_TM_LEGAL_ENTITY = "TW117_TM_LEGAL_ENTITY"
    GDPR_6_1_A = "GDPR_6_1_A"
    GDPR_6_1_B = "GDPR_6_1_B"
    GDPR_6_1_C = "GDPR_6_1_C"
    GDPR_6_1_F = "GDPR_6_1_F"
    MARKETPLACE_TERMS = "MARKETPLACE_TERMS"
    NONE = "NONE"


class ChannelFamily(StrEnum):
    """The basis families of contract §7 step 6."""

    MESSAGING = "messaging"
    CONSENT_ONLY = "consent_only"
    LIVE_CALL = "live_call"
    POST = "post"
    AUDIENCE = "audience"


CHANNEL_FAMILY: dict[Channel, ChannelFamily] = {
    Channel.EMAIL: ChannelFamily.MESSAGING,
    Channel.SMS: ChannelFamily.MESSAGING,
    Channel.WHATSAPP: ChannelFamily.MESSAGING,
    Channel.PHONE_AUTOMATED: ChannelFamily.CONSENT_ONLY,
    Channel.FAX: ChannelFamily.CONSENT_ONLY,
    Channel.PUSH: ChannelFamily.CONSENT_ONLY,
    Channel.IN_APP: ChannelFamily.CONSENT_ONLY,
    Channel.SOCIAL_DM: ChannelFamily.CONSENT_ONLY,
    Channel.PHONE_LIVE: ChannelFamily.LIVE_CALL,
    Channel.POST: ChannelFamily.POST,
    Channel.CUSTOM_AUDIENCE: ChannelFamily.AUDIENCE,
    Channel.LOOKALIKE_AUDIENCE: ChannelFamily.AUDIENCE,
}

CONTACT_TYPES_OF_CHANNEL: dict[Channel, frozenset[ContactType]] = {
    Channel.EMAIL: frozenset({ContactType.EMAIL}),
    Channel.SMS: frozenset({ContactType.PHONE}),
    Channel.WHATSAPP: frozenset({ContactType.PHONE}),
    Channel.PHONE_LIVE: frozenset({ContactType.PHONE}),
    Channel.PHONE_AUTOMATED: frozenset({ContactType.PHONE}),
    Channel.FAX: frozenset({ContactType.PHONE}),
    Channel.POST: frozenset({ContactType.POSTAL}),
    Channel.PUSH: frozenset({ContactType.DEVICE}),
    Channel.IN_APP: frozenset({ContactType.DEVICE}),
    Channel.SOCIAL_DM: frozenset({ContactType.SOCIAL}),
    Channel.CUSTOM_AUDIENCE: frozenset({ContactType.EMAIL, ContactType.PHONE}),
    Channel.LOOKALIKE_AUDIENCE: frozenset({ContactType.EMAIL, ContactType.PHONE}),
}

CHANNELS_OF_CONTACT_TYPE: dict[ContactType, frozenset[Channel]] = {
    contact_type: frozenset(
        channel for channel, types in CONTACT_TYPES_OF_CHANNEL.items() if contact_type in types
    )
    for contact_type in ContactType
}

ALL_CHANNELS: frozenset[Channel] = frozenset(Channel)
AUDIENCE_CHANNELS: frozenset[Channel] = frozenset(
    {Channel.CUSTOM_AUDIENCE, Channel.LOOKALIKE_AUDIENCE}
)
PHONE_CALL_CHANNELS: frozenset[Channel] = frozenset({Channel.PHONE_LIVE, Channel.PHONE_AUTOMATED})
