"""The ZeroMQ bridges of `sluice serve` (topic configs sluice.zmq.pull / sluice.zmq.pub),
with real peers on both sides: libzmq through pyzmq, and kcat (librdkafka) on the Kafka
side. docs/direct.md."""
from __future__ import annotations

import time

import pytest
import zmq
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource

from conftest import free_port
from helpers import admin, create_topic, kcat

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def ctx():
    context = zmq.Context()
    yield context
    context.destroy(linger=0)


def kcat_records(bootstrap: str, topic: str, expected: int, timeout: float = 20) -> list[tuple[int, bytes, bytes]]:
    """(partition, key, value) of every record, once there are `expected` of them."""
    deadline = time.monotonic() + timeout
    while True:
        out = kcat("-b", bootstrap, "-C", "-t", topic, "-e", "-q", "-f", "%p\t%k\t%s\n", timeout=30)
        rows = [line.split(b"\t") for line in out.splitlines()]
        records = [(int(p), k, v) for p, k, v in rows]
        if len(records) >= expected or time.monotonic() > deadline:
            return records
        time.sleep(0.2)


def subscribed_sub(ctx, port: int, prefix: bytes, probe) -> zmq.Socket:
    """A SUB connected to a pub bridge, returned once a probe record (sent by `probe()`
    until one arrives) proves the subscription reached the publisher."""
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, prefix)
    sub.connect(f"tcp://127.0.0.1:{port}")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        probe()
        if sub.poll(300):
            sub.recv_multipart()
            while sub.poll(300):  # later probes still on the way
                sub.recv_multipart()
            return sub
    raise AssertionError("the pub bridge never delivered a probe")


def test_pyzmq_push_to_topic_read_by_kcat(broker, names, ctx):
    topic = names()
    port = free_port()
    create_topic(broker.bootstrap, topic, partitions=3, config={"sluice.zmq.pull": f"tcp://127.0.0.1:{port}"})
    push = ctx.socket(zmq.PUSH)
    push.connect(f"tcp://127.0.0.1:{port}")  # the bridge binds within a second; PUSH waits
    values = [b"value-%03d" % i for i in range(100)]
    for value in values:
        push.send(value)
    keyed = [(b"user-%d" % (i % 5), b"keyed-%03d" % i) for i in range(50)]
    for key, value in keyed:
        push.send_multipart([key, value])
    push.send_multipart([b"a", b"b", b"c"])  # three frames: not a record
    records = kcat_records(broker.bootstrap, topic, len(values) + len(keyed))
    assert len(records) == len(values) + len(keyed)
    assert sorted(v for _, k, v in records if k == b"") == values
    assert sorted((k, v) for _, k, v in records if k != b"") == sorted(keyed)
    # One key, one partition (murmur2, as librdkafka's consistent_random and Java's default).
    partitions = {}
    for p, k, _ in records:
        if k:
            partitions.setdefault(k, set()).add(p)
    assert all(len(ps) == 1 for ps in partitions.values())
    # kcat's own producer puts a key in the same partition as the bridge did.
    kcat("-b", broker.bootstrap, "-P", "-t", topic, "-K:", "-p", "-1", input=b"user-1:from-kcat\n", timeout=30)
    records = kcat_records(broker.bootstrap, topic, len(values) + len(keyed) + 1)
    kcat_partition = [p for p, k, v in records if v == b"from-kcat"][0]
    assert partitions[b"user-1"] == {kcat_partition}


def test_kcat_produce_to_pyzmq_sub(broker, names, ctx):
    topic = names()
    port = free_port()
    create_topic(broker.bootstrap, topic, partitions=2, config={"sluice.zmq.pub": f"tcp://127.0.0.1:{port}"})

    def probe():
        kcat("-b", broker.bootstrap, "-P", "-t", topic, "-K:", input=b"probe:probe\n", timeout=30)

    sub = subscribed_sub(ctx, port, topic.encode(), probe)
    lines = [b"k%d:v%d" % (i, i) for i in range(20)] + [b":no-key"]
    kcat("-b", broker.bootstrap, "-P", "-t", topic, "-K:", input=b"\n".join(lines) + b"\n", timeout=30)
    got = []
    while len(got) < len(lines) and sub.poll(10_000):
        message = sub.recv_multipart()
        if message[1] != b"probe":
            got.append(message)
    assert len(got) == len(lines)
    assert all(m[0] == topic.encode() and len(m) == 3 for m in got)
    assert sorted((m[1], m[2]) for m in got) == sorted(tuple(l.split(b":")) for l in lines)


def test_a_subscriber_filters_on_the_topic_name(broker, names, ctx):
    first, second = names(), names()
    port_a, port_b = free_port(), free_port()
    create_topic(broker.bootstrap, first, config={"sluice.zmq.pub": f"tcp://127.0.0.1:{port_a}"})
    create_topic(broker.bootstrap, second, config={"sluice.zmq.pub": f"tcp://127.0.0.1:{port_b}"})

    def probe():
        kcat("-b", broker.bootstrap, "-P", "-t", first, input=b"probe\n", timeout=30)

    sub = subscribed_sub(ctx, port_a, first.encode(), probe)
    sub.connect(f"tcp://127.0.0.1:{port_b}")  # one SUB, two bridges, one prefix
    time.sleep(0.5)
    kcat("-b", broker.bootstrap, "-P", "-t", second, input=b"other\n", timeout=30)
    kcat("-b", broker.bootstrap, "-P", "-t", first, input=b"mine\n", timeout=30)
    got = []
    while sub.poll(1500):
        got.append(sub.recv_multipart())
    assert [m[2] for m in got if m[2] != b"probe"] == [b"mine"]


def test_bridges_follow_config_changes_while_running(broker, names, ctx):
    topic = names()
    port = free_port()
    create_topic(broker.bootstrap, topic)
    client = admin(broker.bootstrap)

    def alter(op, value=None):
        resource = ConfigResource(
            ConfigResource.Type.TOPIC, topic,
            incremental_configs=[ConfigEntry("sluice.zmq.pull", value, incremental_operation=op)])
        client.incremental_alter_configs([resource])[resource].result(timeout=15)

    alter(AlterConfigOpType.SET, f"tcp://127.0.0.1:{port}")
    push = ctx.socket(zmq.PUSH)
    push.connect(f"tcp://127.0.0.1:{port}")
    push.send(b"while-set")
    assert [v for _, _, v in kcat_records(broker.bootstrap, topic, 1)] == [b"while-set"]
    # Deleting the config stops the bridge: its port is free again.
    alter(AlterConfigOpType.DELETE)
    deadline = time.monotonic() + 15
    probe = ctx.socket(zmq.PULL)
    while True:
        try:
            probe.bind(f"tcp://127.0.0.1:{port}")
            break
        except zmq.ZMQError:
            assert time.monotonic() < deadline, "the pull bridge kept its port after the config was deleted"
            time.sleep(0.2)
    probe.close(linger=0)


def test_an_invalid_endpoint_is_refused(broker, names):
    client = admin(broker.bootstrap)
    from confluent_kafka.admin import NewTopic

    topic = names()
    futures = client.create_topics([NewTopic(topic, 1, config={"sluice.zmq.pub": "udp://239.0.0.1:5000"})])
    with pytest.raises(Exception, match="tcp://HOST:PORT"):
        futures[topic].result(timeout=15)


def test_bridge_figures_on_metrics(make_broker, names, ctx):
    import urllib.request

    b = make_broker(http=True)
    topic = names()
    port = free_port()
    create_topic(b.bootstrap, topic, config={"sluice.zmq.pull": f"tcp://127.0.0.1:{port}"})
    push = ctx.socket(zmq.PUSH)
    push.connect(f"tcp://127.0.0.1:{port}")
    for i in range(5):
        push.send(b"m%d" % i)
    push.send_multipart([b"1", b"2", b"3"])
    labels = f'{{topic="{topic}",bridge="pull"}}'
    deadline = time.monotonic() + 20
    while True:
        text = urllib.request.urlopen(b.http_url + "/metrics", timeout=10).read().decode()
        if f"sluice_zmq_bridge_records_total{labels} 5" in text and f"sluice_zmq_bridge_malformed_total{labels} 1" in text:
            break
        assert time.monotonic() < deadline, [l for l in text.splitlines() if "zmq" in l]
        time.sleep(0.2)
    assert f"sluice_zmq_bridge_peers{labels} 1.0" in text
