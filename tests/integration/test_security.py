"""Least privilege on the real secure broker and Redis (issue 13).

The module starts the secure profiles itself (`KAFKA_PROFILE=secure infra/kafka/kafka.sh up`:
SASL_SSL with SCRAM-SHA-512 users, a local CA, StandardAuthorizer and the ACLs of
`sendgate acl plan`; `REDIS_PROFILE=secure infra/redis/redis.sh up`: ACL users) on their own
ports and stops what it started. The shared broker and Redis are not touched. Each role does
its job with its own credentials and is denied outside it.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient
from services import SESSION_PREFIX, service_unavailable

from streams import topics as T
from streams.commands import acl
from streams.commands.topics import create_topics
from streams.config import Settings
from streams.kafka_config import KafkaClientConfig
from streams.testing.feeder import load_jsonl, retenant
from streams.testing.observe import wait_for_topics
from streams.testing.supervisor import WorkerProcess

REPO = Path(__file__).resolve().parents[2]
VAR = Path(os.environ.get("SENDGATE_VAR", "/tmp/sendgate"))
KAFKA_SH = REPO / "infra" / "kafka" / "kafka.sh"
REDIS_SH = REPO / "infra" / "redis" / "redis.sh"
SECURE_PORT = int(os.environ.get("KAFKA_SECURE_PORT", "29092"))
# the tests' own secure Redis (not `make redis-up-secure`'s 26379): they restart it with
# passwords of their own
REDIS_TEST_PORT = int(os.environ.get("SENDGATE_TEST_REDIS_SECURE_PORT", "26389"))
PARTITIONS = 2
QUIET: dict[str, object] = {"log_level": 0}  # expected denials, not log noise
SCENARIO = Path(os.environ.get("SENDGATE_SCENARIOS", "/work/shared/scenarios")) / "T01.jsonl"
NEW_RUNTIME = importlib.util.find_spec("streams.runtime") is not None


def _script(script: Path, env: dict[str, str], *args: str, timeout: float = 240) -> int:
    done = subprocess.run(["bash", str(script), *args], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=timeout)
    if done.returncode not in (0, 3):
        service_unavailable(f"{script.name} {' '.join(args)}", "make kafka-up-secure",
                            (done.stderr or done.stdout)[-2000:])
    return done.returncode


@dataclass(frozen=True)
class SecureKafka:
    bootstrap: str
    clients: Path

    def file(self, user: str) -> Path:
        return self.clients / f"{user}.properties"

    def config(self, user: str) -> KafkaClientConfig:
        props = {}
        for line in self.file(user).read_text().splitlines():
            if line.strip() and not line.startswith("#"):
                key, _, value = line.partition("=")
                props[key.strip()] = value.strip()
        return KafkaClientConfig(self.bootstrap, props)

    def password(self, user: str) -> str:
        return self.config(user).security["sasl.password"]

    def env(self, user: str) -> dict[str, str]:
        """A process's environment as a deployment of that role would set it."""
        clean = {k: v for k, v in os.environ.items() if not k.startswith("SENDGATE_KAFKA_")}
        return {**clean, "SENDGATE_KAFKA_BOOTSTRAP": self.bootstrap,
                "SENDGATE_KAFKA_CONFIG_FILE": str(self.file(user))}


@dataclass(frozen=True)
class Deployment:
    kafka: SecureKafka
    prefix: str

    def topic(self, name: str) -> str:
        return self.prefix + name


@pytest.fixture(scope="module")
def secure_kafka() -> Iterator[SecureKafka]:
    env = {"KAFKA_PROFILE": "secure", "SENDGATE_PYTHON": sys.executable,
           "SENDGATE_VAR": str(VAR)}
    was_running = _script(KAFKA_SH, env, "status", timeout=30) == 0
    _script(KAFKA_SH, env, "up")
    yield SecureKafka(f"127.0.0.1:{SECURE_PORT}", VAR / "kafka-secure" / "clients")
    if not was_running:
        _script(KAFKA_SH, env, "down", timeout=60)


@pytest.fixture(scope="module")
def deployment(secure_kafka: SecureKafka) -> Iterator[Deployment]:
    """The catalogue's topics under a prefix of this module, with the plan's ACLs for it."""
    prefix = f"{SESSION_PREFIX}sec-{uuid.uuid4().hex[:6]}."
    admin = AdminClient(secure_kafka.config("admin").admin())  # type: ignore[arg-type]
    results = create_topics(admin, prefix=prefix, partitions=PARTITIONS)
    assert all(r.status == "created" for r in results), results
    wait_for_topics(admin, [r.name for r in results])
    plan = acl.plan(prefix)
    acl.apply(admin, plan)
    yield Deployment(secure_kafka, prefix)
    try:
        names = [t for t in admin.list_topics(timeout=10).topics if t.startswith(prefix)]
        for future in admin.delete_topics(names, operation_timeout=60).values():
            future.result(60)
        acl.remove(admin, [a for a in plan if a.role is not acl.Role.ADMIN])
    except Exception as exc:  # cleanup only
        print(f"note: could not clean up {prefix}: {exc}")


# ---------------------------------------------------------------- client helpers

def produce(cfg: KafkaClientConfig, topic: str, value: bytes = b"x",
            timeout_ms: int = 30_000) -> KafkaError | None:
    """Deliver one record; the delivery error (None when the broker took it)."""
    errors: list[KafkaError | None] = []
    producer = Producer(cfg.producer({**QUIET, "message.timeout.ms": timeout_ms}))  # type: ignore[arg-type]
    try:
        producer.produce(topic, key=b"k", value=value, on_delivery=lambda e, _m: errors.append(e))
    except KafkaException as exc:
        return exc.args[0]  # type: ignore[no-any-return]
    producer.flush(timeout_ms / 1000 + 10)
    assert errors, f"no delivery report within {timeout_ms / 1000 + 10:.0f} s"
    return errors[0]


def read_assigned(cfg: KafkaClientConfig, topic: str, group: str,
                  seconds: float = 10.0) -> tuple[list[bytes], KafkaError | None]:
    """Read `topic` by assign() from the beginning (no group join): its values, or the error
    (the topic's metadata error first: librdkafka does not always surface a fetch denial of
    an assigned partition, it just delivers nothing)."""
    consumer = Consumer(cfg.consumer(group, {**QUIET, "enable.auto.commit": False}))
    values: list[bytes] = []
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        if meta.error is not None:
            return values, meta.error
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is None:
                if values:
                    break
                continue
            if msg.error():
                return values, msg.error()
            values.append(msg.value())
        return values, None
    finally:
        consumer.close()


def read_in_group(cfg: KafkaClientConfig, topics: list[str], group: str,
                  until: Any, seconds: float = 60.0) -> list[Any]:
    """Subscribe in `group` and collect messages until `until(messages)` or the deadline;
    an error from the broker fails."""
    consumer = Consumer(cfg.consumer(group, {**QUIET, "auto.offset.reset": "earliest"}))
    got: list[Any] = []
    try:
        consumer.subscribe(topics)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not until(got):
            msg = consumer.poll(0.2)
            if msg is None:
                continue
            if msg.error():
                raise KafkaException(msg.error())
            got.append(msg)
        return got
    finally:
        consumer.close()


def denied(error: KafkaError | None) -> bool:
    return error is not None and error.code() in (
        KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.GROUP_AUTHORIZATION_FAILED,
        KafkaError.CLUSTER_AUTHORIZATION_FAILED, KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
    )


def shop_events(suffix: str) -> list[dict[str, Any]]:
    return retenant(load_jsonl(SCENARIO), suffix)


def settings_for(kafka: SecureKafka, user: str) -> Settings:
    """Settings as `from_env` reads them for that user's process."""
    cfg = kafka.config(user)
    return dataclasses.replace(Settings.from_env(), kafka_bootstrap=cfg.bootstrap,
                               kafka_security=dict(cfg.security))


# ---------------------------------------------------------------- plan (no broker)

def test_acl_plan_grants_each_role_only_its_topics() -> None:
    plan = acl.plan("p.")
    ops: dict[tuple[acl.Role, str], set[acl.Operation]] = {}
    for a in plan:
        if a.resource is acl.Resource.TOPIC:
            ops.setdefault((a.role, a.name), set()).add(a.operation)
    write, read = acl.Operation.WRITE, acl.Operation.READ
    shop = {name for (role, name), o in ops.items() if role is acl.Role.SHOP and write in o}
    assert shop == {"p." + n for n in T.INPUT_TOPICS}
    assert not any(read in o for (role, _), o in ops.items() if role is acl.Role.SHOP)
    esp_read = {name for (role, name), o in ops.items() if role is acl.Role.ESP and read in o}
    assert esp_read == {"p." + T.APPROVED, "p." + T.REVOKED}
    assert not any(write in o for (role, _), o in ops.items() if role is acl.Role.ESP)
    auditor_write = {n for (role, n), o in ops.items() if role is acl.Role.AUDITOR and write in o}
    assert auditor_write == {"p." + T.AUDIT_FINDINGS}
    worker_write = {n for (role, n), o in ops.items() if role is acl.Role.WORKER and write in o}
    own = {"p.sendgate-"}  # its changelog and internal topics (a prefixed ACL)
    assert worker_write == {"p." + n for n in (*T.OUTPUT_TOPICS, T.DEAD_LETTER, T.CONTACT_EVENTS)
                            } | own
    # wildcards only for the admin
    assert {a.role for a in plan if a.name == "*"} == {acl.Role.ADMIN}


def test_acl_plan_prints_kafka_acls_commands_without_secrets() -> None:
    env = {**os.environ, "SENDGATE_KAFKA_SASL_PASSWORD": "never-print-this-9f8e"}
    done = subprocess.run([sys.executable, "-m", "streams.cli", "acl", "plan", "--prefix", "p."],
                          capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("kafka-acls.sh")]
    assert len(lines) >= 20
    assert any("--allow-principal User:esp" in ln and "--topic p.sends.approved" in ln
               for ln in lines)
    assert "never-print-this-9f8e" not in done.stdout + done.stderr


# ---------------------------------------------------------------- authentication

def test_unauthenticated_or_wrong_password_gets_nothing(
    secure_kafka: SecureKafka, deployment: Deployment, tmp_path: Path
) -> None:
    orders = deployment.topic(T.ORDERS)
    plaintext = KafkaClientConfig(secure_kafka.bootstrap)
    admin = AdminClient(plaintext.admin({**QUIET, "socket.timeout.ms": 3000}))  # type: ignore[arg-type]
    with pytest.raises(KafkaException):
        admin.list_topics(timeout=2)
    assert produce(KafkaClientConfig(secure_kafka.bootstrap), orders, timeout_ms=2000) is not None

    wrong = "wrong-password-5c1d2e"
    bad = KafkaClientConfig(secure_kafka.bootstrap,
                            {**secure_kafka.config("shop").security, "sasl.password": wrong})
    error = produce(bad, orders, timeout_ms=2000)
    assert error is not None and not denied(error)  # rejected before any authorisation
    assert wrong not in str(error)

    # a CLI with a wrong password fails without printing it (nor the right one)
    conf = tmp_path / "shop.properties"
    conf.write_text(secure_kafka.file("shop").read_text().replace(
        secure_kafka.password("shop"), wrong))
    env = {**secure_kafka.env("shop"), "SENDGATE_KAFKA_CONFIG_FILE": str(conf)}
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", "topics", "create", "--timeout", "2",
         "--topic-prefix", deployment.prefix + "wrong."],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert done.returncode != 0
    out = done.stdout + done.stderr
    assert "SASL authentication error" in out, out[-1500:]
    assert wrong not in out and secure_kafka.password("shop") not in out
    assert secure_kafka.password("shop") not in repr(settings_for(secure_kafka, "shop"))


def test_controller_port_refuses_a_client_without_the_broker_certificate(
    secure_kafka: SecureKafka,
) -> None:
    """The controller listener (metadata, ACLs) takes only the broker's own certificate."""
    import socket
    import ssl

    port = int(os.environ.get("KAFKA_SECURE_CONTROLLER_PORT", "29093"))
    pki = VAR / "kafka-secure" / "pki"

    def exchange(context: ssl.SSLContext) -> None:
        with (socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
              context.wrap_socket(raw, server_hostname="127.0.0.1") as tls):
            # TLS 1.3: the server checks the client certificate after the client's
            # Finished, so a refusal arrives as an alert on the first read
            tls.sendall(b"\x00\x00\x00\x00")
            tls.recv(1)

    with pytest.raises(ssl.SSLError, match=r"BAD_CERTIFICATE|CERTIFICATE_REQUIRED"):
        exchange(ssl.create_default_context(cafile=str(pki / "ca.pem")))
    broker = ssl.create_default_context(cafile=str(pki / "ca.pem"))
    broker.load_cert_chain(pki / "broker.pem", pki / "broker.key")
    exchange(broker)  # the control: the broker's certificate passes the handshake


# ---------------------------------------------------------------- roles

def test_shop_publishes_inputs_and_is_denied_the_rest(
    secure_kafka: SecureKafka, deployment: Deployment
) -> None:
    from streams.client import SendgateProducer

    shop = secure_kafka.config("shop")
    settings = settings_for(secure_kafka, "shop")
    with SendgateProducer(settings=settings, topic_prefix=deployment.prefix) as sdk:
        for event in shop_events(f"-shop-{uuid.uuid4().hex[:6]}"):
            sdk.publish(event)
    assert sdk.delivered == 2

    # a shop cannot forge a decision, nor read decisions (addresses) or other inputs
    assert denied(produce(shop, deployment.topic(T.APPROVED)))
    assert denied(produce(shop, deployment.topic(T.REVOKED)))
    assert denied(read_assigned(shop, deployment.topic(T.APPROVED), "shop-x")[1])
    assert denied(read_assigned(shop, deployment.topic(T.ORDERS), "shop-x")[1])
    # nor create topics
    admin = AdminClient(shop.admin(QUIET))  # type: ignore[arg-type]
    [result] = create_topics(admin, specs=[T.catalogue(prefix=deployment.prefix + "x.")[0]],
                             timeout=10)
    assert result.status == "failed" and "AUTHORIZATION" in result.detail.upper()


def test_esp_reads_approved_and_revoked_only(
    secure_kafka: SecureKafka, deployment: Deployment
) -> None:
    admin_cfg, esp = secure_kafka.config("admin"), secure_kafka.config("esp")
    for name in (T.APPROVED, T.REVOKED):
        assert produce(admin_cfg, deployment.topic(name), f"v-{name}".encode()) is None
    got = read_in_group(esp, [deployment.topic(T.APPROVED), deployment.topic(T.REVOKED)],
                        deployment.prefix + "esp-sender", lambda m: len(m) >= 2)
    assert sorted(m.value() for m in got) == [b"v-sends.approved", b"v-sends.revoked"]

    # an ESP cannot publish an unsubscribe (or any input), nor read inputs or blocks
    assert denied(produce(esp, deployment.topic(T.UNSUBSCRIBES)))
    assert denied(produce(esp, deployment.topic(T.SEND_REQUESTS)))
    assert denied(produce(esp, deployment.topic(T.APPROVED)))
    for name in (T.ORDERS, T.UNSUBSCRIBES, T.BLOCKED):
        assert denied(read_assigned(esp, deployment.topic(name), deployment.prefix + "esp-x")[1])
    # nor use another role's group
    with pytest.raises(KafkaException) as exc:
        read_in_group(esp, [deployment.topic(T.APPROVED)], deployment.prefix + "sendgate",
                      lambda m: bool(m), seconds=30)
    assert denied(exc.value.args[0])


def test_worker_acls_cover_what_the_runtime_does(
    secure_kafka: SecureKafka, deployment: Deployment
) -> None:
    """Runtime-independent: the worker principal can do each thing the task runtime does
    (streams/runtime/tasks.py: group = prefix + app id; creates its changelog; transactional
    id `<group>-<id>`) and nothing a shop or an ESP does."""
    from confluent_kafka.admin import NewTopic  # type: ignore[attr-defined]

    worker = secure_kafka.config("worker")
    group = deployment.prefix + "sendgate"
    produce(secure_kafka.config("shop"), deployment.topic(T.SIGNUPS), b"input")
    got = read_in_group(worker, [deployment.topic(T.SIGNUPS)], group, lambda m: bool(m))
    assert got and got[0].value() == b"input"
    for name in (T.CONTACT_EVENTS, *T.OUTPUT_TOPICS, T.DEAD_LETTER):
        assert produce(worker, deployment.topic(name)) is None, name
    admin = AdminClient(worker.admin(QUIET))  # type: ignore[arg-type]
    changelog = group + "-contact-state-changelog"
    for future in admin.create_topics([NewTopic(changelog, PARTITIONS, 1)]).values():
        future.result(30)
    producer = Producer(worker.producer({**QUIET, "transactional.id": f"{group}-t1"}))  # type: ignore[arg-type]
    producer.init_transactions(30)
    producer.begin_transaction()
    producer.produce(changelog, key=b"k", value=b"state")
    producer.commit_transaction(30)

    # the worker cannot publish inputs (forge a consent) nor write audit findings
    assert denied(produce(worker, deployment.topic(T.SIGNUPS)))
    assert denied(produce(worker, deployment.topic(T.AUDIT_FINDINGS)))
    bad = Producer(worker.producer({**QUIET, "transactional.id": "other-app-t1"}))  # type: ignore[arg-type]
    with pytest.raises(KafkaException) as exc:
        bad.init_transactions(15)
    assert exc.value.args[0].code() == KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED


def test_viewer_reads_the_changelog_only(
    secure_kafka: SecureKafka, deployment: Deployment
) -> None:
    """`sendgate view follow` as its own user: the changelog in its group, nothing else."""
    viewer = secure_kafka.config("viewer")
    changelog = deployment.prefix + "sendgate-contact-state-changelog"
    group = deployment.prefix + "sendgate-view-follower"
    admin = AdminClient(secure_kafka.config("admin").admin())  # type: ignore[arg-type]
    create_topics(admin, specs=[dataclasses.replace(T.CONTACT_EVENTS_TOPIC, name=changelog,
                                                    partitions=PARTITIONS)])
    assert produce(secure_kafka.config("admin"), changelog, b"a state") is None
    # (the worker test may have written to the changelog too)
    got = read_in_group(viewer, [changelog], group,
                        lambda m: any(x.value() == b"a state" for x in m))
    assert b"a state" in [m.value() for m in got]
    assert denied(produce(viewer, changelog))
    for name in (T.SIGNUPS, T.APPROVED, T.CONTACT_EVENTS):
        assert denied(read_assigned(viewer, deployment.topic(name), group)[1])


@pytest.mark.skipif(not NEW_RUNTIME, reason="the faust worker (aiokafka) takes no librdkafka "
                    "security settings; runs with the task runtime (streams/runtime)")
def test_worker_decides_end_to_end_with_its_own_credentials(
    secure_kafka: SecureKafka, deployment: Deployment, tmp_path: Path
) -> None:
    """shop → `sendgate worker` (worker user) → ESP reads the ALLOW, each as its own user."""
    suffix = f"-e2e-{uuid.uuid4().hex[:6]}"
    env = {**secure_kafka.env("worker"), "SENDGATE_PARTITIONS": str(PARTITIONS),
           "SENDGATE_HMAC_KEY": "security-test-key", "SENDGATE_STATUS_VIEW": "0"}
    worker = WorkerProcess(secure_kafka.bootstrap, tmp_path / "data", tmp_path / "worker.log",
                           topic_prefix=deployment.prefix, env=env).start()
    try:
        from streams.client import SendgateProducer

        with SendgateProducer(settings=settings_for(secure_kafka, "shop"),
                              topic_prefix=deployment.prefix) as sdk:
            for event in shop_events(suffix):
                sdk.publish(event)

        def allowed(msgs: list[Any]) -> bool:
            return any(b"T01-r01" in (m.value() or b"") and suffix.encode() in m.value()
                       for m in msgs)

        got = read_in_group(secure_kafka.config("esp"), [deployment.topic(T.APPROVED)],
                            deployment.prefix + "esp-e2e", allowed, seconds=120)
        assert allowed(got), worker.log_tail()
        assert worker.alive(), worker.log_tail()
        log = worker.log_path.read_text(errors="replace")
        assert secure_kafka.password("worker") not in log
    finally:
        worker.stop()


def test_auditor_replays_and_writes_findings_only(
    secure_kafka: SecureKafka, deployment: Deployment, tmp_path: Path
) -> None:
    from streams.client import SendgateProducer

    with SendgateProducer(settings=settings_for(secure_kafka, "shop"),
                          topic_prefix=deployment.prefix) as sdk:
        for event in shop_events(f"-audit-{uuid.uuid4().hex[:6]}"):
            sdk.publish(event)
    env = {**secure_kafka.env("auditor"), "SENDGATE_HMAC_KEY": "security-test-key"}
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", "audit", "--topic-prefix", deployment.prefix,
         "--settle", "0", "--emit", "--no-progress", "--json", str(tmp_path / "a.json")],
        capture_output=True, text=True, env=env, timeout=180,
    )
    # the replay found requests without a decision (no worker ran): a risk, not an error
    assert done.returncode == 2, done.stdout[-1500:] + done.stderr[-1500:]
    findings, error = read_assigned(secure_kafka.config("admin"),
                                    deployment.topic(T.AUDIT_FINDINGS), "admin-x")
    assert error is None and findings
    auditor = secure_kafka.config("auditor")
    assert denied(produce(auditor, deployment.topic(T.APPROVED)))
    assert denied(produce(auditor, deployment.topic(T.ORDERS)))


# ---------------------------------------------------------------- Redis

@dataclass(frozen=True)
class SecureRedis:
    url: str
    passwords: dict[str, str]

    def env(self, user: str) -> dict[str, str]:
        return {"SENDGATE_REDIS_URL": self.url, "SENDGATE_REDIS_USERNAME": user,
                "SENDGATE_REDIS_PASSWORD": self.passwords[user]}

    def client(self, user: str) -> redis.Redis:
        """A client on the URL `Settings` builds from that user's environment."""
        with pytest.MonkeyPatch.context() as mp:
            for key, value in self.env(user).items():
                mp.setenv(key, value)
            url = Settings.from_env().redis_url
        return redis.Redis.from_url(url, socket_timeout=3)


@pytest.fixture(scope="module")
def secure_redis() -> Iterator[SecureRedis]:
    passwords = {u: f"{u}-{uuid.uuid4().hex}" for u in ("admin", "worker", "status")}
    env = {"REDIS_PROFILE": "secure", "SENDGATE_VAR": str(VAR),
           "REDIS_SECURE_PORT": str(REDIS_TEST_PORT),
           **{f"SENDGATE_REDIS_{u.upper()}_PASSWORD": p for u, p in passwords.items()}}
    _script(REDIS_SH, env, "down", timeout=30)  # a server of an earlier run has other passwords
    _script(REDIS_SH, env, "up", timeout=60)
    yield SecureRedis(f"redis://127.0.0.1:{REDIS_TEST_PORT}/0", passwords)
    _script(REDIS_SH, env, "down", timeout=30)


def test_redis_users_worker_writes_the_view_status_only_reads(secure_redis: SecureRedis) -> None:
    key = f"sg:view:{uuid.uuid4().hex}"
    worker, status = secure_redis.client("worker"), secure_redis.client("status")
    assert worker.hset(key, "answer", "1") == 1
    assert status.hget(key, "answer") == b"1"
    for attempt in (lambda: status.hset(key, "answer", "2"), lambda: status.delete(key),
                    lambda: status.flushdb()):
        with pytest.raises(redis.exceptions.NoPermissionError):
            attempt()
    # the worker is confined to the view's keys and cannot wipe the database
    with pytest.raises(redis.exceptions.NoPermissionError):
        worker.set("sendgate:other", "x")
    with pytest.raises(redis.exceptions.NoPermissionError):
        worker.flushall()
    anonymous = redis.Redis(port=REDIS_TEST_PORT, socket_timeout=3)
    with pytest.raises(redis.exceptions.AuthenticationError):
        anonymous.get(key)
    assert status.hget(key, "answer") == b"1"


def test_status_cli_reads_with_the_status_user_and_hides_a_wrong_password(
    secure_redis: SecureRedis,
) -> None:
    base = {**os.environ, "SENDGATE_HMAC_KEY": "security-test-key"}
    cmd = [sys.executable, "-m", "streams.cli", "status", "nobody@example.org",
           "--entity", "Shop BV", "--channel", "email"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60,
                          env={**base, **secure_redis.env("status")})
    assert done.returncode == 3, done.stdout + done.stderr  # unknown contact: not allowed
    wrong = "wrong-redis-password-77aa"
    bad = {**secure_redis.env("status"), "SENDGATE_REDIS_PASSWORD": wrong}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env={**base, **bad})
    assert done.returncode == 1
    assert wrong not in done.stdout + done.stderr
