"""KIP-612 connection creation rates: the `connection_creation_rate` quota of the `ip` entity
(AlterClientQuotas / DescribeClientQuotas through kafka-python's protocol classes) and the
broker-wide `max.connection.creation.rate`. A storm of raw-socket connections from one
loopback address is throttled while a confluent-kafka producer from another keeps
producing. See docs/broker.md."""

from __future__ import annotations

import selectors
import socket
import struct
import threading
import time

import pytest

from helpers import create_topic, describe_quotas, producer, quota_request, set_quota
from test_overflow import metric, overflow_broker

RATE = "connection_creation_rate"
# ApiVersions v0, correlation id 1, client id "storm".
API_VERSIONS = struct.pack(">ihhih", 15, 18, 0, 1, 5) + b"storm"


def test_ip_quotas_are_validated_described_and_survive_restarts(make_broker):
    b = make_broker()
    set_quota(b.bootstrap, None, RATE, 1000.0, entity_type="ip")  # admin clients here connect from it
    set_quota(b.bootstrap, "127.0.0.2", RATE, 50.0, entity_type="ip")
    set_quota(b.bootstrap, "127.0.0.3", "producer_byte_rate", 1000.0)  # a client id, not an address
    from kafka.protocol.admin.client_quotas import AlterClientQuotasRequest

    E = AlterClientQuotasRequest.EntryData

    def entry(entity, key=RATE, value=5.0):
        return E(entity=[E.EntityData(entity_type=t, entity_name=n) for t, n in entity], ops=[E.OpData(key=key, value=value, remove=False)])

    bad = quota_request(
        b.bootstrap,
        AlterClientQuotasRequest(
            entries=[
                entry([("ip", "127.0.0.1"), ("client-id", "c")]),  # ip cannot be combined
                entry([("ip", "127.0.0.1")], key="producer_byte_rate", value=1000.0),
                entry([("client-id", "c")]),  # connection_creation_rate is for addresses
                entry([("ip", "localhost")]),  # host names are not resolved
                entry([("ip", None)], value=0.5),  # whole connections/s, at least 1
                entry([("ip", None)], value=2.5),
            ],
            validate_only=False,
        ),
    )
    assert [e.error_code for e in bad.entries] == [42] * 6  # INVALID_REQUEST, with messages
    assert all(e.error_message for e in bad.entries), bad
    assert "combined" in bad.entries[0].error_message

    ips = {None: {RATE: 1000.0}, "127.0.0.2": {RATE: 50.0}}
    assert describe_quotas(b.bootstrap, entity_type="ip") == ips
    assert describe_quotas(b.bootstrap) == {"127.0.0.3": {"producer_byte_rate": 1000.0}}
    assert describe_quotas(b.bootstrap, 0, "ip", "127.0.0.2") == {"127.0.0.2": {RATE: 50.0}}
    assert describe_quotas(b.bootstrap, 0, "ip", "127.0.0.3") == {}
    assert describe_quotas(b.bootstrap, 1, "ip") == {None: {RATE: 1000.0}}
    assert describe_quotas(b.bootstrap, 2, "ip") == {"127.0.0.2": {RATE: 50.0}}
    b.restart()
    assert describe_quotas(b.bootstrap, entity_type="ip") == ips
    assert describe_quotas(b.bootstrap) == {"127.0.0.3": {"producer_byte_rate": 1000.0}}
    set_quota(b.bootstrap, "127.0.0.2", RATE, None, entity_type="ip")
    set_quota(b.bootstrap, None, RATE, None, entity_type="ip")
    assert describe_quotas(b.bootstrap, entity_type="ip") == {}


class Storm(threading.Thread):
    """Opens connections from `source` as fast as it can (up to `outstanding` at a time),
    sends ApiVersions on each and records whether it was answered or closed unanswered, and
    how long a closed one was held open."""

    def __init__(self, port: int, source: str, outstanding: int = 200):
        super().__init__(daemon=True)
        self.port, self.source, self.outstanding = port, source, outstanding
        self.answered = 0
        self.refused: list[float] = []  # seconds each refused connection stayed open
        self.timed_out = 0
        self.running = True

    def run(self):
        sel = selectors.DefaultSelector()
        open_since: dict[socket.socket, float] = {}

        def finish(s, answered):
            if answered:
                self.answered += 1
            else:
                self.refused.append(time.monotonic() - open_since[s])
            sel.unregister(s)
            del open_since[s]
            s.close()

        while self.running or open_since:
            while self.running and len(open_since) < self.outstanding:
                s = socket.socket()
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # no TIME_WAIT pile-up
                s.bind((self.source, 0))
                s.connect(("127.0.0.1", self.port))
                open_since[s] = time.monotonic()
                try:
                    s.sendall(API_VERSIONS)
                except OSError:
                    pass
                s.setblocking(False)
                sel.register(s, selectors.EVENT_READ)
            for key, _ in sel.select(timeout=0.01):
                s = key.fileobj
                try:
                    data = s.recv(4)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                finish(s, len(data) > 0)
            now = time.monotonic()
            for s, since in list(open_since.items()):
                if now - since > 5:
                    self.timed_out += 1
                    finish(s, True)
        sel.close()

    def stop(self):
        self.running = False
        self.join(30)


@pytest.mark.timeout(120)
def test_a_connection_storm_from_one_address_is_throttled_while_a_producer_from_another_keeps_producing(
    make_broker, names
):
    quota = 5
    b = overflow_broker(make_broker)
    t = names()
    create_topic(b.bootstrap, t)
    set_quota(b.bootstrap, "127.0.0.2", RATE, float(quota), entity_type="ip")
    latencies: list[float] = []
    errors: list = []
    p = producer(b.bootstrap, **{"linger.ms": 0})

    def on_delivery(err, msg, sent=None):
        if err:
            errors.append(err)
        else:
            latencies.append(time.monotonic() - sent)

    storm = Storm(b.port, "127.0.0.2")
    storm.start()
    started = time.monotonic()
    sent = 0
    while time.monotonic() - started < 8:
        now = time.monotonic()
        p.produce(t, value=b"x" * 100, on_delivery=lambda err, msg, now=now: on_delivery(err, msg, now))
        sent += 1
        p.poll(0.01)
    elapsed = time.monotonic() - started
    storm.stop()
    assert p.flush(30) == 0
    attempts = storm.answered + len(storm.refused)
    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99)]
    print(
        f"storm: {attempts / elapsed:.0f} connections/s, {storm.answered} answered, {len(storm.refused)} refused; "
        f"producer: {len(latencies)} delivered, p99 {p99 * 1000:.0f} ms, max {latencies[-1] * 1000:.0f} ms"
    )
    assert storm.timed_out == 0
    assert attempts > 50 * elapsed, "not much of a storm"
    # The first second's burst, then the quota.
    assert storm.answered <= quota * (elapsed + 1) + 3, storm.answered
    assert storm.answered >= quota * elapsed * 0.5, storm.answered
    # Refused ones were held open for a while (so their clients do not reconnect at once), not
    # beyond a second.
    assert max(storm.refused) >= 0.1 and max(storm.refused) <= 1.5, (min(storm.refused), max(storm.refused))
    assert metric(b.metrics_url, "sluice_connections_throttled_total") == len(storm.refused)
    # One warning per address per 10 s, not one per connection.
    assert b.log_path.read_text().count("exceed its connection_creation_rate") == 1
    # The producer from 127.0.0.1 (no quota) kept producing throughout.
    assert not errors, errors[:3]
    assert len(latencies) == sent and sent > 100
    assert p99 < 1.0, f"p99 produce latency {p99:.3f} s during the storm"


def test_the_broker_wide_rate_delays_connections_instead_of_refusing_them(make_broker):
    b = overflow_broker(make_broker, **{"max.connection.creation.rate": "10"})
    started = time.monotonic()
    sockets = []
    for _ in range(30):
        s = socket.create_connection(("127.0.0.1", b.port), timeout=10)
        s.sendall(API_VERSIONS)
        sockets.append(s)
    answered = 0
    for s in sockets:
        try:
            if len(s.recv(4)) == 4:
                answered += 1
        except OSError:
            pass
        s.close()
    elapsed = time.monotonic() - started
    # 10 at once (one second of the rate), the other 20 at 10/s: all served, none refused.
    assert answered == 30
    assert elapsed >= 1.7, f"30 connections at 10/s took {elapsed:.2f} s"
    assert metric(b.metrics_url, "sluice_connections_delayed_total") >= 18
    assert metric(b.metrics_url, "sluice_connections_throttled_total") == 0
