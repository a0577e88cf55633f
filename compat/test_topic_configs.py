"""Kafka's topic configs with real admin clients: every one of Kafka's names is accepted and
described, compression.type recompresses what producers send, the describe-then-alter round
trip that admin tools do works, and broker defaults change on a running broker (issue #15)."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic, ResourceType
from kafka import KafkaConsumer, TopicPartition as KPTopicPartition

from helpers import admin, consume, create_topic, producer, produce_all

# Every topic config of Kafka 3.9 (TopicConfig.java), and Sluice's own.
KAFKA_TOPIC_CONFIGS = [
    "cleanup.policy", "compression.gzip.level", "compression.lz4.level", "compression.type",
    "compression.zstd.level", "delete.retention.ms", "file.delete.delay.ms", "flush.messages", "flush.ms",
    "follower.replication.throttled.replicas", "index.interval.bytes", "leader.replication.throttled.replicas",
    "local.retention.bytes", "local.retention.ms", "max.compaction.lag.ms", "max.message.bytes",
    "message.downconversion.enable", "message.format.version", "message.timestamp.after.max.ms",
    "message.timestamp.before.max.ms", "message.timestamp.difference.max.ms", "message.timestamp.type",
    "min.cleanable.dirty.ratio", "min.compaction.lag.ms", "min.insync.replicas", "preallocate",
    "remote.log.copy.disable", "remote.log.delete.on.disable", "remote.storage.enable", "retention.bytes",
    "retention.ms", "segment.bytes", "segment.index.bytes", "segment.jitter.ms", "segment.ms",
    "unclean.leader.election.enable",
]


def describe(a, resource_type, name) -> dict:
    res = ConfigResource(resource_type, name)
    return a.describe_configs([res])[res].result(timeout=15)


def test_every_kafka_topic_config_is_described(broker, names):
    topic = names()
    create_topic(broker.bootstrap, topic)
    configs = describe(admin(broker.bootstrap), ResourceType.TOPIC, topic)
    missing = [name for name in KAFKA_TOPIC_CONFIGS if name not in configs]
    assert not missing, missing
    assert configs["message.format.version"].is_default
    assert configs["message.timestamp.after.max.ms"].value == "3600000"


def test_legacy_and_inert_configs_are_accepted_unknown_ones_refused(broker, names):
    a = admin(broker.bootstrap)
    topic = names()
    legacy = {
        "message.format.version": "0.10.0.0", "message.downconversion.enable": "false",
        "preallocate": "true", "segment.index.bytes": "1048576", "min.cleanable.dirty.ratio": "0.3",
        "delete.retention.ms": "1000", "unclean.leader.election.enable": "false",
        "remote.storage.enable": "false", "compression.zstd.level": "9",
    }
    a.create_topics([NewTopic(topic, 1, replication_factor=1, config=legacy)])[topic].result(timeout=15)
    configs = describe(a, ResourceType.TOPIC, topic)
    for name, value in legacy.items():
        assert configs[name].value == value and not configs[name].is_default, name
    for bad in ({"no.such.config": "1"}, {"remote.storage.enable": "true"}, {"compression.type": "brotli"},
                {"min.compaction.lag.ms": "10", "max.compaction.lag.ms": "5"}):
        name = names()
        with pytest.raises(KafkaException) as failure:
            a.create_topics([NewTopic(name, 1, replication_factor=1, config=bad)])[name].result(timeout=15)
        assert failure.value.args[0].name() == "INVALID_CONFIG", bad


@pytest.mark.parametrize("topic_codec", ["uncompressed", "gzip", "snappy", "lz4", "zstd"])
def test_compression_type_recompresses_for_every_client(broker, names, topic_codec):
    topic = names()
    create_topic(broker.bootstrap, topic, 1, {"compression.type": topic_codec})
    values = []
    for producer_codec in ["none", "gzip", "snappy", "lz4", "zstd"]:
        batch = [(producer_codec + "-%d-" % i).encode() * 20 for i in range(50)]
        produce_all(producer(broker.bootstrap, **{"compression.type": producer_codec}), topic, batch)
        values += batch
    assert [r.value for r in consume(broker.bootstrap, topic)] == values
    # kafka-python decodes every codec itself.
    c = KafkaConsumer(bootstrap_servers=broker.bootstrap, auto_offset_reset="earliest", consumer_timeout_ms=5000)
    c.assign([KPTopicPartition(topic, 0)])
    got = [m.value for m in c]
    c.close()
    assert got == values


def test_describe_then_alter_everything_round_trips(broker, names):
    """What librdkafka's test helper (and many admin UIs) do: read every config back and
    write them all with one legacy AlterConfigs, changing one."""
    a = admin(broker.bootstrap)
    topic = names()
    create_topic(broker.bootstrap, topic)
    described = describe(a, ResourceType.TOPIC, topic)
    values = {name: entry.value for name, entry in described.items() if entry.value is not None}
    values["retention.ms"] = "7200000"
    res = ConfigResource(ResourceType.TOPIC, topic, set_config=values)
    a.alter_configs([res])[res].result(timeout=15)
    assert describe(a, ResourceType.TOPIC, topic)["retention.ms"].value == "7200000"


def test_incremental_append_and_subtract_on_cleanup_policy(broker, names):
    a = admin(broker.bootstrap)
    topic = names()
    create_topic(broker.bootstrap, topic)
    for op, want in ((AlterConfigOpType.APPEND, {"delete", "compact"}), (AlterConfigOpType.SUBTRACT, {"delete"})):
        res = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
            ConfigEntry("cleanup.policy", "compact", incremental_operation=op)])
        a.incremental_alter_configs([res])[res].result(timeout=15)
        assert set(describe(a, ResourceType.TOPIC, topic)["cleanup.policy"].value.split(",")) == want


def test_broker_defaults_change_on_a_running_broker_and_persist(make_broker, names):
    broker = make_broker()
    a = admin(broker.bootstrap)
    topic, pinned = names(), names()
    create_topic(broker.bootstrap, topic)
    create_topic(broker.bootstrap, pinned, 1, {"retention.ms": "1000000"})
    res = ConfigResource(ResourceType.BROKER, "0", incremental_configs=[
        ConfigEntry("log.retention.ms", "5555555", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("background.threads", "9", incremental_operation=AlterConfigOpType.SET)])
    a.incremental_alter_configs([res])[res].result(timeout=15)
    for restart in (False, True):
        if restart:
            broker.restart()
            a = admin(broker.bootstrap)
        assert describe(a, ResourceType.TOPIC, topic)["retention.ms"].value == "5555555"
        assert describe(a, ResourceType.TOPIC, topic)["retention.ms"].is_default
        assert describe(a, ResourceType.TOPIC, pinned)["retention.ms"].value == "1000000"
        broker_configs = describe(a, ResourceType.BROKER, "0")
        assert broker_configs["log.retention.ms"].value == "5555555"
        assert broker_configs["background.threads"].value == "9"
    # Settings only `sluice serve` takes are refused, naming the way to set them.
    res = ConfigResource(ResourceType.BROKER, "0", set_config={"log.dirs": "/elsewhere"})
    with pytest.raises(KafkaException) as failure:
        a.alter_configs([res])[res].result(timeout=15)
    assert "sluice serve --set" in str(failure.value)
