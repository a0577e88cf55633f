"""Transactions are not implemented yet (issue #22). Until they are, no client may hang:
a transactional producer must fail at once with TRANSACTIONAL_ID_AUTHORIZATION_FAILED (a
fatal error for every client) rather than retry a coordinator lookup until its timeout."""

from __future__ import annotations

import asyncio
import time

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer


def test_confluent_kafka_init_transactions_fails_at_once(broker):
    p = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": "txn-confluent"})
    started = time.monotonic()
    with pytest.raises(KafkaException) as failure:
        p.init_transactions(60)
    error = failure.value.args[0]
    assert error.code() == KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED and error.fatal()
    assert time.monotonic() - started < 10


def test_kafka_python_init_transactions_fails_at_once(broker):
    from kafka import KafkaProducer
    from kafka.errors import TransactionalIdAuthorizationFailedError

    started = time.monotonic()
    p = KafkaProducer(bootstrap_servers=broker.bootstrap, transactional_id="txn-kafka-python")
    try:
        with pytest.raises(TransactionalIdAuthorizationFailedError):
            p.init_transactions()
    finally:
        p.close(timeout=5)
    assert time.monotonic() - started < 10


def test_aiokafka_transactional_producer_fails_at_once(broker):
    from aiokafka import AIOKafkaProducer
    from aiokafka.errors import TransactionalIdAuthorizationFailed

    async def start() -> None:
        p = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, transactional_id="txn-aiokafka")
        try:
            with pytest.raises(TransactionalIdAuthorizationFailed):
                await asyncio.wait_for(p.start(), 60)
        finally:
            await p.stop()

    started = time.monotonic()
    asyncio.run(start())
    assert time.monotonic() - started < 10
