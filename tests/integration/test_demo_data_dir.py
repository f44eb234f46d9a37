"""`make run` after `kafka.sh reset`: the demo worker must not start on the RocksDB dir of the
previous cluster (faust would stop with a ConsistencyError: offsets ahead of the changelog)."""

from __future__ import annotations

from pathlib import Path

from confluent_kafka.admin import AdminClient

from streams.commands.demo import demo_data_dir


def test_demo_data_dir_is_per_cluster_and_drops_the_others(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    base = tmp_path / "demo-worker"
    stale = base / "some-older-cluster" / "sendgate-contact-state-7.db"
    stale.mkdir(parents=True)
    (base / "legacy-partition.db").mkdir()

    got = demo_data_dir(base, kafka_bootstrap)

    cluster = AdminClient({"bootstrap.servers": kafka_bootstrap}).list_topics(
        timeout=15).cluster_id
    assert got == base / cluster
    assert not (base / "some-older-cluster").exists()
    assert not (base / "legacy-partition.db").exists()
    got.mkdir()
    (got / "kept").mkdir()
    assert demo_data_dir(base, kafka_bootstrap) == got and (got / "kept").is_dir()
