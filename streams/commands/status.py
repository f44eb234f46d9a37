"""`sendgate status`: may this legal entity send marketing to this contact now, and why?

Answers from the Redis status view (a projection; the stream job decides every actual
send). The contact is hashed exactly as the core does (`normalise` + `contact_key`) and
only the hash goes to Redis. CONTACT `-` reads it from standard input, which keeps the
address out of shell history and the process list.

Exit status: 0 marketing allowed, 3 not allowed (or unknown contact), 1 view unavailable,
2 bad arguments.
"""

from __future__ import annotations

import argparse
import json
import sys

CHANNELS = (
    "email", "sms", "whatsapp", "social_dm", "push", "in_app", "phone_live",
    "phone_automated", "fax", "post", "custom_audience", "lookalike_audience",
)
CONTACT_TYPES = ("email", "phone", "postal", "device", "social")
EXIT_ALLOWED, EXIT_ERROR, EXIT_USAGE, EXIT_NOT_ALLOWED = 0, 1, 2, 3


def guess_type(value: str) -> str | None:
    """email when it has an @, phone when it looks like a number, else None (ask)."""
    text = value.strip()
    if "@" in text:
        return "email"
    digits = text.replace(" ", "").replace("-", "").replace("(", "").replace(")", "")
    if digits.startswith("+"):
        digits = digits[1:]
    if digits.isdigit() and len(digits) >= 6:
        return "phone"
    return None


def read_contact(arg: str) -> str:
    return sys.stdin.readline().strip() if arg == "-" else arg


def register(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.description = __doc__
    p.add_argument("contact", metavar="CONTACT", help="the contact value, or - for stdin")
    p.add_argument("--tenant", default="default", help="tenant (default: default)")
    p.add_argument("--entity", help="legal entity that would send (required unless --all)")
    p.add_argument("--channel", choices=CHANNELS, help="channel (required unless --all)")
    p.add_argument("--type", dest="contact_type", choices=CONTACT_TYPES,
                   help="contact type (default: guessed, email or phone)")
    p.add_argument("--all", action="store_true",
                   help="print every field of the contact's view instead of one answer")
    p.add_argument("--redis-url", default=None, help="default $SENDGATE_REDIS_URL")
    p.add_argument("--namespace", default=None,
                   help="Redis key prefix (default $SENDGATE_VIEW_NAMESPACE or sg:view:)")


def run(args: argparse.Namespace) -> int:
    import asyncio

    from streams.config import MissingSecret, Settings, hmac_key
    from streams.core.enums import CONTACT_TYPES_OF_CHANNEL, Channel, ContactType
    from streams.core.errors import RejectedRecord
    from streams.core.keys import contact_key
    from streams.core.model import ContactPoint

    if not args.all and (not args.entity or not args.channel):
        print("sendgate status: --entity and --channel are required (or --all)",
              file=sys.stderr)
        return EXIT_USAGE
    value = read_contact(args.contact)
    ctype = args.contact_type or guess_type(value)
    if ctype is None:
        print("sendgate status: cannot tell the contact type: give --type", file=sys.stderr)
        return EXIT_USAGE
    if args.channel and ContactType(ctype) not in CONTACT_TYPES_OF_CHANNEL[Channel(args.channel)]:
        print(f"sendgate status: channel {args.channel} does not reach a {ctype} contact",
              file=sys.stderr)
        return EXIT_USAGE
    try:
        secret = hmac_key()
        ckey = contact_key(secret, args.tenant, ContactPoint(ContactType(ctype), value))
    except MissingSecret as exc:
        print(f"sendgate status: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except RejectedRecord as exc:  # never echo the contact
        print(f"sendgate status: contact not usable as {ctype}: {exc.reason.value}",
              file=sys.stderr)
        return EXIT_USAGE
    settings = Settings.from_env()
    return asyncio.run(_lookup(args, settings.redis_url, settings.view.namespace, ckey))


async def _lookup(args: argparse.Namespace, default_url: str, default_namespace: str | None,
                  ckey: str) -> int:
    from streams.view.projection import DEFAULT_NAMESPACE, StatusView

    view = StatusView(args.redis_url or default_url,
                      namespace=args.namespace or default_namespace or DEFAULT_NAMESPACE)
    try:
        if args.all:
            fields = await view.lookup_all(ckey)
            print(json.dumps({"tenant": args.tenant, "known": bool(fields), "view": fields},
                             indent=2, ensure_ascii=False))
            return EXIT_ALLOWED if fields else EXIT_NOT_ALLOWED
        answer = await view.lookup(ckey, args.entity, args.channel)
    except Exception as exc:
        print(f"sendgate status: status view unavailable: {type(exc).__name__}",
              file=sys.stderr)
        return EXIT_ERROR
    finally:
        await view.aclose(flush_timeout=0)
    out = answer.to_dict()
    out["tenant"] = args.tenant
    print(json.dumps(out, indent=2, ensure_ascii=False))
    return EXIT_ALLOWED if answer.marketing_allowed else EXIT_NOT_ALLOWED
