"""Settings from the environment (non-negotiable 5: secrets never in the repo).

With `streams/compose.py` (the worker's settings) this is the one place that reads the
environment (issue 15 §6): every other module gets its settings as arguments, which
`tests/unit/test_composition_root.py` checks.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

from streams.kafka_config import KafkaClientConfig, is_security_key
from streams.topics import DAY_MS, DEAD_LETTER_RETENTION_MS

REPO_ROOT = Path(__file__).resolve().parent.parent
SCHEMA_DIR = REPO_ROOT / "schemas"
DEFAULT_SCENARIO_DIR = REPO_ROOT.parent / "shared" / "scenarios"


class MissingSecret(RuntimeError):
    """The HMAC key for contact keys is not configured."""


@dataclass(frozen=True, slots=True)
class ViewSettings:
    """The read side: the status view in Redis and its HTTP endpoint (README, Configuration).

    `namespace` None is the view's own default (`streams.view.projection.DEFAULT_NAMESPACE`);
    `ttl_seconds` None: view keys do not expire."""

    namespace: str | None = None
    max_pending: int = 20000
    ttl_seconds: int | None = None
    status_host: str = "127.0.0.1"
    status_port: int = 8088


@dataclass(frozen=True)
class Settings:
    kafka_bootstrap: str
    # may carry the Redis user's password (SENDGATE_REDIS_PASSWORD): kept out of repr
    redis_url: str = field(repr=False)
    schema_registry_url: str | None
    partitions: int
    data_dir: Path
    app_id: str
    processing_guarantee: str
    web_port: int
    api_token: str | None
    policy_file: Path | None
    # carries sasl.password: kept out of repr (a logged Settings must not leak it)
    kafka_security: dict[str, str] = field(default_factory=dict, repr=False)
    dead_letter_retention_ms: int = DEAD_LETTER_RETENTION_MS
    # prefix of every topic name of the deployment (tests, side-by-side copies)
    topic_prefix: str = ""
    loglevel: str = "warning"
    view: ViewSettings = field(default_factory=ViewSettings)
    # OpenTelemetry's standard variables (OTEL_TRACES_EXPORTER, OTEL_SERVICE_NAME); the
    # OTLP exporter reads its own OTEL_EXPORTER_OTLP_* itself
    traces_exporter: str = "none"
    service_name: str | None = None

    @property
    def kafka(self) -> KafkaClientConfig:
        """Every Kafka client's connection and security settings (`streams.kafka_config`)."""
        return KafkaClientConfig(self.kafka_bootstrap, self.kafka_security)

    @staticmethod
    def from_env() -> Settings:
        env = os.environ
        var = Path(env.get("SENDGATE_VAR", "/tmp/sendgate"))
        return Settings(
            kafka_bootstrap=env.get(
                "SENDGATE_KAFKA_BOOTSTRAP", f"127.0.0.1:{env.get('KAFKA_PORT', '19092')}"
            ),
            redis_url=_with_credentials(
                env.get(
                    "SENDGATE_REDIS_URL", f"redis://127.0.0.1:{env.get('REDIS_PORT', '16379')}/0"
                ),
                env.get("SENDGATE_REDIS_USERNAME") or None,
                env.get("SENDGATE_REDIS_PASSWORD") or None,
            ),
            schema_registry_url=env.get("SENDGATE_SCHEMA_REGISTRY_URL") or None,
            partitions=int(env.get("SENDGATE_PARTITIONS", "12")),
            data_dir=Path(env.get("SENDGATE_DATA_DIR", str(var / "worker"))),
            app_id=env.get("SENDGATE_APP_ID", "sendgate"),
            processing_guarantee=env.get("SENDGATE_PROCESSING_GUARANTEE", "at_least_once"),
            web_port=int(env.get("SENDGATE_WEB_PORT", "6066")),
            api_token=env.get("SENDGATE_API_TOKEN") or None,
            policy_file=_policy_file(env),
            kafka_security=_kafka_security(env),
            dead_letter_retention_ms=_days_ms(
                env.get("SENDGATE_DEAD_LETTER_RETENTION_DAYS"), DEAD_LETTER_RETENTION_MS
            ),
            topic_prefix=env.get("SENDGATE_TOPIC_PREFIX", ""),
            loglevel=env.get("SENDGATE_LOGLEVEL") or "warning",
            view=ViewSettings(
                namespace=env.get("SENDGATE_VIEW_NAMESPACE") or None,
                max_pending=int(env.get("SENDGATE_VIEW_MAX_PENDING") or 20000),
                ttl_seconds=int(env.get("SENDGATE_VIEW_TTL_SECONDS") or 0) or None,
                status_host=env.get("SENDGATE_STATUS_HOST") or "127.0.0.1",
                status_port=int(env.get("SENDGATE_STATUS_PORT") or 8088),
            ),
            traces_exporter=(env.get("OTEL_TRACES_EXPORTER") or "none").strip().lower(),
            service_name=env.get("OTEL_SERVICE_NAME") or None,
        )


def _policy_file(env: Mapping[str, str]) -> Path | None:
    policy = env.get("SENDGATE_POLICY_FILE")
    return Path(policy) if policy else None


def policy_file() -> Path | None:
    """`SENDGATE_POLICY_FILE`, for commands that need no other setting (`decide` works on a
    file, without Kafka, Redis or the Kafka client settings `Settings` reads)."""
    return _policy_file(os.environ)


def child_environment(overrides: Mapping[str, str]) -> dict[str, str]:
    """The environment of a child process: this process's, with `overrides` on top."""
    return {**os.environ, **overrides}


def _days_ms(value: str | None, default: int) -> int:
    """Days (decimals allowed) as milliseconds; unset or empty: `default`."""
    if not value:
        return default
    days = float(value)
    if days <= 0:
        raise ValueError(f"retention must be positive days, got {value!r}")
    return int(days * DAY_MS)


def _with_credentials(url: str, username: str | None, password: str | None) -> str:
    """The Redis URL with the ACL user's name and password (issue 13: a least-privilege Redis
    user per process), taken from their own variables so the password is never typed into a
    URL on a command line. A URL that already names a user keeps it."""
    if not (username or password):
        return url
    parts = urlsplit(url)
    if parts.username or parts.password:
        return url
    auth = quote(username or "", safe="") + (":" + quote(password, safe="") if password else "")
    return urlunsplit(parts._replace(netloc=f"{auth}@{parts.netloc}"))


def kafka_for(target: str | KafkaClientConfig | None = None) -> KafkaClientConfig:
    """The Kafka settings of a client given a bootstrap string (a `--bootstrap` flag, a
    test's broker) or a whole config: a string keeps the security settings of the
    environment, so every client, also one built from a bare bootstrap, authenticates."""
    if isinstance(target, KafkaClientConfig):
        return target
    return Settings.from_env().kafka.with_bootstrap(target)


def _kafka_security(env: os._Environ[str] | dict[str, str]) -> dict[str, str]:
    """librdkafka security properties: a properties file (`SENDGATE_KAFKA_CONFIG_FILE`,
    `key=value` lines) overlaid by `SENDGATE_KAFKA_<PROPERTY>` variables, property dots written
    as underscores (`SENDGATE_KAFKA_SASL_PASSWORD` → `sasl.password`). Only
    `security.protocol`, `sasl.*` and `ssl.*` are taken."""
    props: dict[str, str] = {}
    path = env.get("SENDGATE_KAFKA_CONFIG_FILE")
    if path:
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                key, _, value = line.partition("=")
                props[key.strip()] = value.strip()
    for name, value in env.items():
        if name.startswith("SENDGATE_KAFKA_") and name not in _NOT_CLIENT_PROPS:
            props[name.removeprefix("SENDGATE_KAFKA_").lower().replace("_", ".")] = value
    return {k: v for k, v in props.items() if is_security_key(k)}


_NOT_CLIENT_PROPS = frozenset({"SENDGATE_KAFKA_BOOTSTRAP", "SENDGATE_KAFKA_CONFIG_FILE"})


def hmac_key(*, allow_test_default: bool = False) -> bytes:
    """The contact-key secret (contract §1: stored keys are keyed hashes).

    `SENDGATE_HMAC_KEY` must be set outside tests; tests and the local demo opt in to
    a fixed, clearly non-secret development key.
    """
    value = os.environ.get("SENDGATE_HMAC_KEY")
    if value:
        return value.encode("utf-8")
    if allow_test_default or os.environ.get("SENDGATE_DEV_MODE") == "1":
        return b"sendgate-dev-key-not-secret"
    raise MissingSecret(
        "SENDGATE_HMAC_KEY is not set: contact keys are HMAC-SHA256 and need a secret "
        "(export SENDGATE_HMAC_KEY=..., or SENDGATE_DEV_MODE=1 for local development)"
    )
