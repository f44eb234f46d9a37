"""`sendgate acl plan|apply`: least-privilege Kafka ACLs per role (issue 13).

One plan, generated from the topic catalogue (`streams.topics`), is both printed for a real
cluster (`plan`: `kafka-acls.sh` commands) and applied to a broker (`apply`, through the
admin API with the admin's `SENDGATE_KAFKA_*` settings; `infra/kafka/kafka.sh` runs it after
the secure broker starts). Roles:

* shop: write (and describe) the four input topics; nothing else, so it cannot forge a
  decision, read `sends.approved` (addresses) or read another shop's events.
* worker: its consumer group (and its in-process view follower's); read the inputs; read and
  write the internal re-keyed topic and its own changelog/internal topics
  (`<prefix><app id>-*`, which it may create); write the outputs and the dead letters; its
  transactional ids (exactly-once).
* esp: its groups (`<prefix>esp*`); read `sends.approved` and `sends.revoked` only.
* auditor: read the inputs and outputs, write the audit findings; its assign-only groups.
* viewer: `sendgate view follow|rebuild`; read the contact-state changelog in their groups.
* admin: everything (creates topics, applies this plan); on the local broker also a super user.

Prefixed resources are used only where the names are the runtime's own (changelog, groups
with a random suffix, transactional ids); every catalogue topic is a literal ACL. No
wildcard is granted to any role but admin.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from streams import topics as T


class Role(StrEnum):
    ADMIN = "admin"
    SHOP = "shop"
    WORKER = "worker"
    ESP = "esp"
    AUDITOR = "auditor"
    VIEWER = "viewer"


class Resource(StrEnum):
    TOPIC = "topic"
    GROUP = "group"
    TRANSACTIONAL_ID = "transactional-id"
    CLUSTER = "cluster"


class Pattern(StrEnum):
    LITERAL = "literal"
    PREFIXED = "prefixed"


class Operation(StrEnum):
    """kafka-acls `--operation` names."""

    ALL = "All"
    READ = "Read"
    WRITE = "Write"
    CREATE = "Create"
    DESCRIBE = "Describe"
    DESCRIBE_CONFIGS = "DescribeConfigs"


@dataclass(frozen=True, slots=True, order=True)
class Acl:
    """One ALLOW entry: `principal` may `operation` on `resource` `name` (literal or prefix)."""

    role: Role
    resource: Resource
    name: str
    pattern: Pattern
    operation: Operation
    principal: str


AUDIT_GROUP_PREFIX = "sendgate-audit-"
"""The audit's assign-only readers name their group `sendgate-audit-<uuid>`
(`streams.audit.replay.KafkaReader`): never joined, never committed."""

VIEW_READER_GROUP_PREFIX = "sendgate-view-reader-"
"""`sendgate view rebuild` reads the changelog assign-only in `sendgate-view-reader-<uuid>`
(`streams.commands.view.scan_topic`)."""

ESP_GROUP_PREFIX = "esp"


def principals(overrides: Mapping[Role, str] | None = None) -> dict[Role, str]:
    """`User:<role>` unless overridden (a real cluster's principal names)."""
    return {r: (overrides or {}).get(r, f"User:{r}") for r in Role}


def plan(
    prefix: str = "", app_id: str = "sendgate", users: Mapping[Role, str] | None = None
) -> tuple[Acl, ...]:
    """The ACLs of every role for the catalogue's topics named with `prefix`."""
    from streams.commands.view import changelog_topic

    who = principals(users)
    inputs = [prefix + name for name in T.INPUT_TOPICS]
    outputs = [prefix + name for name in T.OUTPUT_TOPICS]
    app = prefix + app_id
    acls: list[Acl] = []

    def grant(role: Role, resource: Resource, names: Iterable[str],
              ops: Sequence[Operation], pattern: Pattern = Pattern.LITERAL) -> None:
        acls.extend(Acl(role, resource, n, pattern, op, who[role]) for n in names for op in ops)

    read, write, describe = Operation.READ, Operation.WRITE, Operation.DESCRIBE
    topic, group = Resource.TOPIC, Resource.GROUP

    grant(Role.SHOP, topic, inputs, (write, describe))

    # its group, its changelog restorer's, and the groups of the status-view follower it
    # runs in-process by default (and that follower's start-up probe of the changelog)
    grant(Role.WORKER, group,
          [app, app + "-restore", app + "-view-follower", app + "-view-probe"],
          (read, describe))
    grant(Role.WORKER, topic, inputs, (read, describe))
    grant(Role.WORKER, topic, [prefix + T.CONTACT_EVENTS], (read, write, describe))
    grant(Role.WORKER, topic, [*outputs, prefix + T.DEAD_LETTER], (write, describe))
    grant(Role.WORKER, topic, [app + "-"],
          (read, write, describe, Operation.CREATE, Operation.DESCRIBE_CONFIGS), Pattern.PREFIXED)
    grant(Role.WORKER, Resource.TRANSACTIONAL_ID, [app], (write, describe), Pattern.PREFIXED)

    grant(Role.ESP, group, [prefix + ESP_GROUP_PREFIX], (read, describe), Pattern.PREFIXED)
    grant(Role.ESP, topic, [prefix + T.APPROVED, prefix + T.REVOKED], (read, describe))

    grant(Role.AUDITOR, group, [AUDIT_GROUP_PREFIX], (read, describe), Pattern.PREFIXED)
    grant(Role.AUDITOR, topic, [*inputs, *outputs], (read, describe))
    grant(Role.AUDITOR, topic, [prefix + T.AUDIT_FINDINGS], (write, describe))

    grant(Role.VIEWER, group, [app + "-view-follower"], (read, describe))
    grant(Role.VIEWER, group, [VIEW_READER_GROUP_PREFIX], (read, describe), Pattern.PREFIXED)
    grant(Role.VIEWER, topic, [changelog_topic(app_id, prefix)], (read, describe))

    grant(Role.ADMIN, Resource.CLUSTER, ["kafka-cluster"], (Operation.ALL,))
    for resource in (topic, group, Resource.TRANSACTIONAL_ID):
        grant(Role.ADMIN, resource, ["*"], (Operation.ALL,))
    return tuple(acls)


def kafka_acls_commands(
    acls: Sequence[Acl], bootstrap: str, command_config: str = "admin.properties"
) -> list[str]:
    """`kafka-acls.sh --add` commands, one per (principal, resource, pattern) with all its
    operations (the admin's credentials come from `--command-config`, never argv)."""
    grouped: dict[tuple[Role, str, Resource, str, Pattern], list[Operation]] = {}
    for a in acls:
        grouped.setdefault((a.role, a.principal, a.resource, a.name, a.pattern), []).append(
            a.operation
        )
    lines: list[str] = []
    role_seen: Role | None = None
    for (role, principal, resource, name, pattern), ops in grouped.items():
        if role is not role_seen:
            lines.append(f"# {role}")
            role_seen = role
        target = ["--cluster"] if resource is Resource.CLUSTER else [f"--{resource}", name]
        cmd = [
            "kafka-acls.sh", "--bootstrap-server", bootstrap,
            "--command-config", command_config, "--add", "--allow-principal", principal,
            *(x for op in ops for x in ("--operation", str(op))),
            *target,
            *(["--resource-pattern-type", "prefixed"] if pattern is Pattern.PREFIXED else []),
        ]
        lines.append(shlex.join(cmd))
    return lines


def bindings(acls: Iterable[Acl]) -> list[Any]:
    """confluent-kafka `AclBinding`s of the plan (allow, from any host)."""
    # the public confluent_kafka.admin re-exports these without declaring them
    from confluent_kafka.admin._acl import AclBinding, AclOperation, AclPermissionType
    from confluent_kafka.admin._resource import ResourcePatternType, ResourceType

    rtype = {
        Resource.TOPIC: ResourceType.TOPIC,
        Resource.GROUP: ResourceType.GROUP,
        Resource.TRANSACTIONAL_ID: ResourceType.TRANSACTIONAL_ID,
        Resource.CLUSTER: ResourceType.BROKER,  # librdkafka's name for the cluster resource
    }
    optype = {
        Operation.ALL: AclOperation.ALL,
        Operation.READ: AclOperation.READ,
        Operation.WRITE: AclOperation.WRITE,
        Operation.CREATE: AclOperation.CREATE,
        Operation.DESCRIBE: AclOperation.DESCRIBE,
        Operation.DESCRIBE_CONFIGS: AclOperation.DESCRIBE_CONFIGS,
    }
    return [
        AclBinding(
            rtype[a.resource],
            a.name,
            ResourcePatternType.PREFIXED if a.pattern is Pattern.PREFIXED
            else ResourcePatternType.LITERAL,
            a.principal,
            "*",
            optype[a.operation],
            AclPermissionType.ALLOW,
        )
        for a in acls
    ]


def apply(admin: Any, acls: Sequence[Acl], timeout: float = 30.0) -> int:
    """Create the plan's ACLs (adding an existing one is a no-op) and wait until the broker
    answers with all of them; returns how many.

    CreateAcls returns once the controller committed them; the broker's authoriser applies
    them a moment later (seen: a produce right after `apply` was still denied), so this
    waits for DescribeAcls, which the broker answers from its authoriser."""
    from confluent_kafka.admin._acl import AclBindingFilter, AclOperation, AclPermissionType
    from confluent_kafka.admin._resource import ResourcePatternType, ResourceType

    wanted = bindings(acls)
    futures = admin.create_acls(wanted, request_timeout=timeout)
    for future in futures.values():
        future.result(timeout=timeout)
    anything: Any = None  # matches any name, principal and host (the stub says str)
    any_acl = AclBindingFilter(ResourceType.ANY, anything, ResourcePatternType.ANY, anything,
                               anything, AclOperation.ANY, AclPermissionType.ANY)
    deadline = time.monotonic() + timeout
    while True:
        present = set(admin.describe_acls(any_acl, request_timeout=timeout).result(timeout))
        missing = [b for b in wanted if b not in present]
        if not missing:
            return len(futures)
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(missing)} ACLs not visible on the broker, e.g. {missing[0]}")
        time.sleep(0.05)


def remove(admin: Any, acls: Sequence[Acl], timeout: float = 30.0) -> int:
    """Delete exactly the plan's ACLs (a retired prefix, a test deployment); returns how many
    the broker deleted."""
    from confluent_kafka.admin._acl import AclBindingFilter

    filters = [
        AclBindingFilter(b.restype, b.name, b.resource_pattern_type, b.principal, b.host,
                         b.operation, b.permission_type)
        for b in bindings(acls)
    ]
    futures = admin.delete_acls(filters, request_timeout=timeout)
    return sum(len(f.result(timeout=timeout)) for f in futures.values())


def _principal_override(text: str) -> tuple[Role, str]:
    role, sep, principal = text.partition("=")
    if not sep or role not in Role.__members__.values() or not principal.startswith("User:"):
        raise argparse.ArgumentTypeError(
            f"expected ROLE=User:NAME with ROLE one of {', '.join(Role)}, got {text!r}"
        )
    return Role(role), principal


def register(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.description = __doc__
    p.add_argument("action", choices=("plan", "apply"))
    p.add_argument("--prefix", default="", help="topic name prefix (as `topics --topic-prefix`)")
    p.add_argument("--app-id", default=None,
                   help="worker application id (default $SENDGATE_APP_ID)")
    p.add_argument("--principal", action="append", type=_principal_override, default=[],
                   metavar="ROLE=User:NAME", help="principal of a role (default User:<role>)")
    p.add_argument("--bootstrap",
                   help="Kafka bootstrap servers (default $SENDGATE_KAFKA_BOOTSTRAP)")
    p.add_argument("--command-config", default="admin.properties",
                   help="plan: the admin's client properties file named in the commands")
    p.add_argument("--timeout", type=float, default=30.0)


def run(args: argparse.Namespace) -> int:
    from streams.config import Settings

    settings = Settings.from_env()
    acls = plan(args.prefix, args.app_id or settings.app_id, dict(args.principal))
    kafka = settings.kafka.with_bootstrap(args.bootstrap)
    if args.action == "plan":
        for line in kafka_acls_commands(acls, kafka.bootstrap, args.command_config):
            print(line)
        return 0
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    try:
        count = apply(AdminClient(kafka.admin()), acls, args.timeout)  # type: ignore[arg-type]
    except KafkaException as exc:
        print(f"sendgate acl apply: {exc}", file=sys.stderr)
        return 1
    roles = sorted({a.role for a in acls})
    print(f"{count} ACLs for {len(roles)} roles ({', '.join(roles)})")
    return 0
