#!/usr/bin/env python3
"""Client scenarios run by capture.py, one per process:

    python3 clients.py CLIENT ACTION BOOTSTRAP TOPIC [CODEC|VARIANT]

CLIENT is confluent, kafkapython or aiokafka; ACTION is produce or consume
(or metadata, for confluent).
Records to produce come from records.py, so the manifest and the clients agree.
Every scenario bounds its own run time; capture.py also kills it after a deadline.
"""

from __future__ import annotations

import asyncio
import sys
import time

import records as R


def confluent_produce(bootstrap: str, topic: str, variant: str) -> None:
    from confluent_kafka import Producer

    conf = {"bootstrap.servers": bootstrap, "client.id": "sluice-capture-confluent", "linger.ms": 200,
            "enable.idempotence": True, "acks": "all", "message.timeout.ms": 8000}
    if variant in R.CODECS:
        conf["compression.type"] = variant
    elif variant == "acks0":
        conf.update({"enable.idempotence": False, "acks": 0})
    p = Producer(conf)
    errors = []

    def cb(err, msg):
        if err is not None:
            errors.append(err)

    for key, value, headers in R.records_for(variant):
        p.produce(topic, value=value, key=key, partition=0, headers=headers or None, on_delivery=cb)
    left = p.flush(10)
    if left or errors:
        sys.exit(f"confluent produce {variant}: {left} undelivered, errors {errors}")


def confluent_metadata(bootstrap: str, topic: str, variant: str) -> None:
    from confluent_kafka import Producer

    md = Producer({"bootstrap.servers": bootstrap, "client.id": "sluice-capture-confluent"}).list_topics(timeout=5)
    if topic not in md.topics:
        sys.exit(f"confluent metadata: {topic} not listed")


def confluent_consume(bootstrap: str, topic: str, variant: str) -> None:
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "client.id": "sluice-capture-confluent",
                  "group.id": "sluice-capture-group", "enable.auto.commit": False,
                  "enable.partition.eof": True})
    c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    deadline = time.time() + 5
    eof = False
    while time.time() < deadline and not eof:
        m = c.poll(0.5)
        if m is not None and m.error() is not None and m.error().code() == -191:  # _PARTITION_EOF
            eof = True
    # One explicit commit and committed() lookup: OffsetCommit / OffsetFetch frames.
    c.commit(offsets=[TopicPartition(topic, 0, 0)], asynchronous=False)
    c.committed([TopicPartition(topic, 0)], timeout=5)
    c.close()
    if not eof:
        sys.exit("confluent consume: no partition EOF")


def kafkapython_produce(bootstrap: str, topic: str, variant: str) -> None:
    from kafka import KafkaProducer

    kw = {}
    if variant in R.CODECS and variant != "none":
        kw["compression_type"] = variant
    p = KafkaProducer(bootstrap_servers=bootstrap, client_id="sluice-capture-kafkapython", linger_ms=200,
                      request_timeout_ms=8000, **kw)
    futs = [p.send(topic, key=k, value=v, partition=0, headers=[(hk, hv) for hk, hv in h])
            for k, v, h in R.records_for(variant)]
    p.flush(10)
    for f in futs:
        f.get(timeout=5)
    p.close(5)


def kafkapython_consume(bootstrap: str, topic: str, variant: str) -> None:
    from kafka import KafkaConsumer, TopicPartition

    c = KafkaConsumer(bootstrap_servers=bootstrap, client_id="sluice-capture-kafkapython", group_id=None,
                      enable_auto_commit=False, request_timeout_ms=8000)
    tp = TopicPartition(topic, 0)
    c.assign([tp])
    c.seek_to_beginning(tp)
    deadline = time.time() + 3
    while time.time() < deadline:
        c.poll(timeout_ms=500)
    c.close()


async def _aiokafka_produce(bootstrap: str, topic: str, variant: str) -> None:
    from aiokafka import AIOKafkaProducer

    kw = {}
    if variant in R.CODECS and variant != "none":
        kw["compression_type"] = variant
    elif variant == "idempotent":
        kw["enable_idempotence"] = True
    p = AIOKafkaProducer(bootstrap_servers=bootstrap, client_id="sluice-capture-aiokafka", linger_ms=200,
                         request_timeout_ms=8000, **kw)
    await p.start()
    try:
        futs = [await p.send(topic, key=k, value=v, partition=0, headers=[(hk, hv) for hk, hv in h])
                for k, v, h in R.records_for(variant)]
        await asyncio.wait_for(asyncio.gather(*futs), 10)
    finally:
        await p.stop()


async def _aiokafka_consume(bootstrap: str, topic: str, variant: str) -> None:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, client_id="sluice-capture-aiokafka", group_id=None,
                         enable_auto_commit=False, request_timeout_ms=8000)
    await c.start()
    try:
        tp = TopicPartition(topic, 0)
        c.assign([tp])
        await c.seek_to_beginning(tp)
        try:
            await asyncio.wait_for(c.getone(), 3)
        except asyncio.TimeoutError:
            pass
    finally:
        await c.stop()


def main() -> None:
    client, action, bootstrap, topic = sys.argv[1:5]
    variant = sys.argv[5] if len(sys.argv) > 5 else ""
    if client == "confluent":
        {"produce": confluent_produce, "consume": confluent_consume,
         "metadata": confluent_metadata}[action](bootstrap, topic, variant)
    elif client == "kafkapython":
        {"produce": kafkapython_produce, "consume": kafkapython_consume}[action](bootstrap, topic, variant)
    elif client == "aiokafka":
        fn = {"produce": _aiokafka_produce, "consume": _aiokafka_consume}[action]
        asyncio.run(fn(bootstrap, topic, variant))
    else:
        sys.exit(f"unknown client {client}")


if __name__ == "__main__":
    main()
