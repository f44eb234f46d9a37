"""One factory for every Kafka client's configuration (worker, SDK, audit, view, CLI, harness).

The connection and security settings (`bootstrap.servers`, `security.protocol`, `sasl.*`,
`ssl.*`) come from `Settings` (the environment or a librdkafka properties file), so a secure
cluster needs no code change and no secret on a command line. Callers add only what is theirs
(group id, offsets, batching) on top. The variables are tabled in README "Security"; the
roles' ACLs are `sendgate acl plan` (streams/commands/acl.py, issue 13).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

ClientConfig = dict[str, object]
"""A confluent-kafka configuration dict (values may be callbacks such as `error_cb`)."""

SECURITY_PREFIXES: Final = ("security.protocol", "sasl.", "ssl.")
"""librdkafka properties that `KafkaClientConfig.security` may carry."""

SECRET_KEYS: Final = frozenset({"sasl.password", "ssl.key.password", "ssl.keystore.password",
                                "ssl.key.pem", "sasl.oauthbearer.client.secret",
                                "sasl.oauthbearer.config"})
"""Never printed: `redacted()` masks them for logs and error messages."""


def is_security_key(name: str) -> bool:
    return name == "security.protocol" or name.startswith(SECURITY_PREFIXES[1:])


@dataclass(frozen=True, slots=True)
class KafkaClientConfig:
    """Where the cluster is and how to authenticate; builds each client's config dict."""

    bootstrap: str
    security: Mapping[str, str] = field(default_factory=dict)

    def base(self) -> ClientConfig:
        return {"bootstrap.servers": self.bootstrap, **self.security}

    def consumer(self, group_id: str, extra: Mapping[str, object] | None = None) -> ClientConfig:
        return {**self.base(), "group.id": group_id, **(extra or {})}

    def producer(self, extra: Mapping[str, object] | None = None) -> ClientConfig:
        """Java-compatible partitioning (murmur2 of the key), so a shop's Java producer and
        ours put one key on one partition."""
        return {**self.base(), "partitioner": "murmur2_random", **(extra or {})}

    def admin(self, extra: Mapping[str, object] | None = None) -> ClientConfig:
        return {**self.base(), **(extra or {})}

    def with_bootstrap(self, bootstrap: str | None) -> KafkaClientConfig:
        """The same security towards another bootstrap (a `--bootstrap` flag)."""
        return self if not bootstrap else KafkaClientConfig(bootstrap, self.security)

    def redacted(self) -> ClientConfig:
        return {k: ("***" if k in SECRET_KEYS else v) for k, v in self.base().items()}

    def __repr__(self) -> str:
        """Redacted: a config that reaches a log line or an exception text shows no secret."""
        return f"KafkaClientConfig({self.redacted()!r})"
