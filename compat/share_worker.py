"""A share-group worker for compat/test_share_groups.py, run as its own process.

    python3 share_worker.py BOOTSTRAP GROUP TOPIC MODE

Prints one line per record it is handed: `offset delivery_count`, flushed at once, so a
parent that SIGKILLs it knows what it held. MODE:
    accept  implicit acknowledgement (each poll accepts the previous poll's records); stops
            after 5 s without records, closing cleanly (which accepts the last batch)
    hold    takes one batch, prints `held`, and never acknowledges (waits to be killed)
"""

import sys
import time

from confluent_kafka import ShareConsumer


def main() -> None:
    bootstrap, group, topic, mode = sys.argv[1:5]
    config = {"bootstrap.servers": bootstrap, "group.id": group}
    if mode == "hold":
        config["share.acknowledgement.mode"] = "explicit"
    consumer = ShareConsumer(config)
    consumer.subscribe([topic])
    idle_since = time.monotonic()
    while True:
        batch = [m for m in consumer.poll(0.5) if not m.error()]
        for message in batch:
            print(message.offset(), message.delivery_count(), flush=True)
        if batch:
            idle_since = time.monotonic()
            if mode == "hold":
                print("held", flush=True)
                time.sleep(3600)
        elif mode == "accept" and time.monotonic() - idle_since > 5:
            break
    consumer.close()


if __name__ == "__main__":
    main()
