"""Admin APIs through confluent-kafka's AdminClient and kafka-python's KafkaAdminClient."""

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import (
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewPartitions,
    NewTopic,
    ResourceType,
)
from confluent_kafka import TopicCollection

from helpers import admin, consume, create_topic, produce_all, producer


def kafka_error(future, timeout=15) -> KafkaError:
    with pytest.raises(KafkaException) as info:
        future.result(timeout=timeout)
    return info.value.args[0]


def topic_configs(a, topic) -> dict:
    resource = ConfigResource(ResourceType.TOPIC, topic)
    return a.describe_configs([resource])[resource].result(timeout=15)


@pytest.mark.timeout(60)
def test_create_list_describe_delete_topics(broker, names):
    a = admin(broker.bootstrap)
    t1, t2 = names(), names()
    futures = a.create_topics([NewTopic(t1, 3), NewTopic(t2, 1, config={"retention.ms": "3600000"})])
    for f in futures.values():
        assert f.result(timeout=15) is None

    md = a.list_topics(timeout=10)
    assert t1 in md.topics and t2 in md.topics
    assert sorted(md.topics[t1].partitions) == [0, 1, 2]
    assert md.topics[t1].error is None
    assert [b.id for b in md.brokers.values()] == [md.controller_id]
    for p in md.topics[t1].partitions.values():
        assert p.leader == md.controller_id and p.replicas == [p.leader] and p.isrs == [p.leader]

    described = a.describe_topics(TopicCollection([t1, t2]))
    d1 = described[t1].result(timeout=15)
    assert d1.name == t1 and not d1.is_internal
    assert [p.id for p in d1.partitions] == [0, 1, 2]
    assert d1.topic_id is not None and str(d1.topic_id) != "AAAAAAAAAAAAAAAAAAAAAA"  # not all-zero
    assert described[t2].result(timeout=15).topic_id != d1.topic_id

    # Creating it again: TOPIC_ALREADY_EXISTS.
    err = kafka_error(a.create_topics([NewTopic(t1, 1)])[t1])
    assert err.code() == KafkaError.TOPIC_ALREADY_EXISTS

    for f in a.delete_topics([t1, t2], operation_timeout=10).values():
        assert f.result(timeout=15) is None
    md = a.list_topics(timeout=10)
    assert t1 not in md.topics and t2 not in md.topics
    err = kafka_error(a.delete_topics([t1])[t1])
    assert err.code() == KafkaError.UNKNOWN_TOPIC_OR_PART

    # A deleted name can be created again, empty.
    assert a.create_topics([NewTopic(t1, 2)])[t1].result(timeout=15) is None
    assert sorted(a.list_topics(t1, timeout=10).topics[t1].partitions) == [0, 1]


@pytest.mark.timeout(60)
def test_create_topic_validate_only(broker, names):
    a = admin(broker.bootstrap)
    t = names()
    assert a.create_topics([NewTopic(t, 2)], validate_only=True)[t].result(timeout=15) is None
    assert t not in a.list_topics(timeout=10).topics


@pytest.mark.timeout(60)
def test_create_partitions(broker, names):
    a = admin(broker.bootstrap)
    t = names()
    create_topic(broker.bootstrap, t, 1)
    assert a.create_partitions([NewPartitions(t, 4)])[t].result(timeout=15) is None
    assert sorted(a.list_topics(t, timeout=10).topics[t].partitions) == [0, 1, 2, 3]
    # Fewer / the same: INVALID_PARTITIONS with a message.
    err = kafka_error(a.create_partitions([NewPartitions(t, 2)])[t])
    assert err.code() == KafkaError.INVALID_PARTITIONS and err.str()
    # Unknown topic.
    missing = names()
    err = kafka_error(a.create_partitions([NewPartitions(missing, 2)])[missing])
    assert err.code() == KafkaError.UNKNOWN_TOPIC_OR_PART
    # The new partition takes records.
    p = producer(broker.bootstrap)
    produce_all(p, t, [b"in-p3"], partition=3)
    assert [r.value for r in consume(broker.bootstrap, t, partition=3)] == [b"in-p3"]


@pytest.mark.timeout(60)
def test_describe_configs_topic_and_broker(broker, names):
    a = admin(broker.bootstrap)
    t = names()
    create_topic(broker.bootstrap, t, 1, {"retention.ms": "7200000"})
    configs = topic_configs(a, t)
    for name in ("cleanup.policy", "retention.ms", "retention.bytes", "segment.bytes", "max.message.bytes",
                 "message.timestamp.type"):
        assert name in configs, name
    r = configs["retention.ms"]
    assert r.value == "7200000" and not r.is_default and r.source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    s = configs["segment.bytes"]
    assert s.is_default and s.source == ConfigSource.DEFAULT_CONFIG.value and int(s.value) > 0
    assert configs["message.timestamp.type"].value == "CreateTime"

    resource = ConfigResource(ResourceType.BROKER, "0")
    broker_configs = a.describe_configs([resource])[resource].result(timeout=15)
    assert "message.max.bytes" in broker_configs

    missing = ConfigResource(ResourceType.TOPIC, names())
    err = kafka_error(a.describe_configs([missing])[missing])
    assert err.code() == KafkaError.UNKNOWN_TOPIC_OR_PART


@pytest.mark.timeout(60)
def test_incremental_alter_configs(broker, names):
    a = admin(broker.bootstrap)
    t = names()
    create_topic(broker.bootstrap, t, 1, {"retention.ms": "7200000"})
    resource = ConfigResource(
        ResourceType.TOPIC, t,
        incremental_configs=[ConfigEntry("retention.bytes", "1048576",
                                         incremental_operation=AlterConfigOpType.SET)])
    assert a.incremental_alter_configs([resource])[resource].result(timeout=15) is None
    configs = topic_configs(a, t)
    assert configs["retention.bytes"].value == "1048576" and not configs["retention.bytes"].is_default
    assert configs["retention.ms"].value == "7200000"  # untouched by an incremental alter

    resource = ConfigResource(
        ResourceType.TOPIC, t,
        incremental_configs=[ConfigEntry("retention.ms", None, incremental_operation=AlterConfigOpType.DELETE)])
    assert a.incremental_alter_configs([resource])[resource].result(timeout=15) is None
    configs = topic_configs(a, t)
    assert configs["retention.ms"].is_default
    assert configs["retention.bytes"].value == "1048576"

    # validate_only changes nothing.
    resource = ConfigResource(
        ResourceType.TOPIC, t,
        incremental_configs=[ConfigEntry("retention.bytes", "5", incremental_operation=AlterConfigOpType.SET)])
    assert a.incremental_alter_configs([resource], validate_only=True)[resource].result(timeout=15) is None
    assert topic_configs(a, t)["retention.bytes"].value == "1048576"


@pytest.mark.timeout(60)
def test_legacy_alter_configs_replaces_all(broker, names):
    a = admin(broker.bootstrap)
    t = names()
    create_topic(broker.bootstrap, t, 1, {"retention.ms": "7200000"})
    resource = ConfigResource(ResourceType.TOPIC, t, set_config={"retention.bytes": "2097152"})
    with pytest.warns(DeprecationWarning):
        futures = a.alter_configs([resource])
    assert futures[resource].result(timeout=15) is None
    configs = topic_configs(a, t)
    assert configs["retention.bytes"].value == "2097152"
    # Legacy AlterConfigs replaces the whole set: retention.ms is back to its default.
    assert configs["retention.ms"].is_default


@pytest.mark.timeout(60)
def test_invalid_configs_rejected(broker, names):
    a = admin(broker.bootstrap)
    bad = [
        {"retention.ms": "soon"},
        {"retention.ms": "-5"},
        {"cleanup.policy": "shred"},
        {"message.timestamp.type": "WallClock"},
        {"no.such.config": "1"},
        {"segment.bytes": "99999999999"},
    ]
    for config in bad:
        t = names()
        err = kafka_error(a.create_topics([NewTopic(t, 1, config=config)])[t])
        assert err.code() == KafkaError.INVALID_CONFIG, (config, err)
        assert err.str() and err.str() != "Broker: Invalid config", (config, err.str())  # a real message
        assert t not in a.list_topics(timeout=10).topics

    t = names()
    create_topic(broker.bootstrap, t, 1)
    resource = ConfigResource(
        ResourceType.TOPIC, t,
        incremental_configs=[ConfigEntry("retention.ms", "later", incremental_operation=AlterConfigOpType.SET)])
    err = kafka_error(a.incremental_alter_configs([resource])[resource])
    assert err.code() == KafkaError.INVALID_CONFIG and "retention.ms" in err.str()
    resource = ConfigResource(ResourceType.TOPIC, t, set_config={"max.message.bytes": "lots"})
    with pytest.warns(DeprecationWarning):
        err = kafka_error(a.alter_configs([resource])[resource])
    assert err.code() == KafkaError.INVALID_CONFIG and "max.message.bytes" in err.str()
    assert topic_configs(a, t)["retention.ms"].is_default


@pytest.mark.timeout(60)
def test_invalid_topic_names_rejected(broker):
    a = admin(broker.bootstrap)
    for name in ["has space", "slash/name", "x" * 250, ".", "..", "ünïcode", "star*"]:
        err = kafka_error(a.create_topics([NewTopic(name, 1)])[name])
        assert err.code() == KafkaError.TOPIC_EXCEPTION, (name, err)
    # Through a producer's (auto-creating) Metadata request: INVALID_TOPIC_EXCEPTION too.
    p = producer(broker.bootstrap, **{"message.timeout.ms": 5000})
    errors = []
    p.produce("bad name!", value=b"x", on_delivery=lambda e, m: errors.append(e))
    p.flush(15)
    assert len(errors) == 1 and errors[0] is not None and errors[0].code() == KafkaError.TOPIC_EXCEPTION
    # The longest legal name works.
    ok = "y" * 249
    assert a.create_topics([NewTopic(ok, 1)])[ok].result(timeout=15) is None
    a.delete_topics([ok])[ok].result(timeout=15)


@pytest.mark.timeout(60)
def test_delete_records(broker, names):
    a = admin(broker.bootstrap)
    t = names()
    create_topic(broker.bootstrap, t, 1)
    produce_all(producer(broker.bootstrap), t, [b"r%d" % i for i in range(10)])
    futures = a.delete_records([TopicPartition(t, 0, 5)])
    result = list(futures.values())[0].result(timeout=15)
    assert result.low_watermark == 5
    c = __import__("helpers").consumer(broker.bootstrap)
    try:
        assert c.get_watermark_offsets(TopicPartition(t, 0), timeout=10) == (5, 10)
    finally:
        c.close()
    records = consume(broker.bootstrap, t)
    assert [r.offset for r in records] == list(range(5, 10))
    assert [r.value for r in records] == [b"r%d" % i for i in range(5, 10)]
    # Beyond the high watermark: OFFSET_OUT_OF_RANGE.
    err = kafka_error(list(a.delete_records([TopicPartition(t, 0, 11)]).values())[0])
    assert err.code() == KafkaError.OFFSET_OUT_OF_RANGE
    # -1 (OFFSET_END): everything.
    result = list(a.delete_records([TopicPartition(t, 0, -1)]).values())[0].result(timeout=15)
    assert result.low_watermark == 10


@pytest.mark.timeout(60)
def test_describe_cluster(broker):
    a = admin(broker.bootstrap)
    result = a.describe_cluster(request_timeout=10).result(timeout=15)
    assert result.cluster_id
    assert len(result.nodes) == 1
    node = result.nodes[0]
    assert (node.host, node.port) == ("127.0.0.1", broker.port)
    assert result.controller is not None and result.controller.id == node.id


# --- kafka-python ----------------------------------------------------------


@pytest.fixture
def kp_admin(broker):
    from kafka.admin import KafkaAdminClient

    a = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=10000)
    yield a
    a.close()


@pytest.mark.timeout(60)
def test_kafka_python_admin_topics(broker, names, kp_admin):
    from kafka.admin import NewPartitions as KNewPartitions
    from kafka.admin import NewTopic as KNewTopic

    t = names()
    kp_admin.create_topics([KNewTopic(t, 2, 1, topic_configs={"retention.ms": "60000"})])
    assert t in kp_admin.list_topics()
    (described,) = kp_admin.describe_topics([t])
    assert described["error_code"] == 0 and len(described["partitions"]) == 2
    kp_admin.create_partitions({t: KNewPartitions(3)})
    (described,) = kp_admin.describe_topics([t])
    assert len(described["partitions"]) == 3
    cluster = kp_admin.describe_cluster()
    assert cluster["cluster_id"] and len(cluster["brokers"]) == 1 and cluster["brokers"][0]["port"] == broker.port
    kp_admin.delete_topics([t])
    assert t not in kp_admin.list_topics()


@pytest.mark.timeout(60)
def test_kafka_python_admin_configs(broker, names, kp_admin):
    from kafka.admin import ConfigResource as KConfigResource
    from kafka.admin import ConfigResourceType
    from kafka.admin import NewTopic as KNewTopic
    from kafka.errors import InvalidConfigurationError, InvalidTopicError

    t = names()
    kp_admin.create_topics([KNewTopic(t, 1, 1, topic_configs={"retention.ms": "60000"})])
    desc = kp_admin.describe_configs([KConfigResource(ConfigResourceType.TOPIC, t)])
    assert desc["topic"][t]["retention.ms"]["value"] == "60000"
    for incremental in (True, False):
        value = "120000" if incremental else "180000"
        kp_admin.alter_configs(
            [KConfigResource(ConfigResourceType.TOPIC, t, configs={"retention.ms": value})], incremental=incremental)
        desc = kp_admin.describe_configs([KConfigResource(ConfigResourceType.TOPIC, t)])
        assert desc["topic"][t]["retention.ms"]["value"] == value
    with pytest.raises(InvalidConfigurationError):
        kp_admin.create_topics([KNewTopic(names(), 1, 1, topic_configs={"retention.ms": "x"})])
    with pytest.raises(InvalidTopicError):
        kp_admin.create_topics([KNewTopic("bad name", 1, 1)])


@pytest.mark.timeout(60)
def test_kafka_python_admin_delete_records(broker, names, kp_admin):
    from kafka import TopicPartition as KTopicPartition

    t = names()
    create_topic(broker.bootstrap, t, 1)
    produce_all(producer(broker.bootstrap), t, [b"%d" % i for i in range(8)])
    result = kp_admin.delete_records({KTopicPartition(t, 0): 3})
    assert result[KTopicPartition(t, 0)]["low_watermark"] == 3
    assert [r.offset for r in consume(broker.bootstrap, t)] == list(range(3, 8))
