#!/usr/bin/env python3
"""Page load time of the web console's topic list with many topics.

Starts `sluice serve --http-listen` with N topics (default 1,000, one record each), then
measures, over several loads each: the server's time to answer GET /ui/topics (HTTP, no
browser), and the time headless chromium takes to load and render it (Navigation Timing:
responseEnd and loadEventEnd from navigation start). Prints medians and the page size.

  scripts/bench-console.py [--bin .build-release/release/sluice] [--topics 1000] [--loads 15]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
import urllib.request

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from sluiceproc import free_port, percentile, start_sluice, stop_process


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", default=".build-release/release/sluice")
    parser.add_argument("--topics", type=int, default=1000)
    parser.add_argument("--loads", type=int, default=15)
    args = parser.parse_args()

    work = tempfile.mkdtemp(prefix="bench-console-")
    http_port = free_port()
    os.makedirs(f"{work}/data")
    proc, bootstrap = start_sluice(args.bin, f"{work}/data", extra_args=["--http-listen", f"127.0.0.1:{http_port}"])
    try:
        admin = AdminClient({"bootstrap.servers": bootstrap})
        names = [f"topic-{i:05d}" for i in range(args.topics)]
        for start in range(0, len(names), 200):
            futures = admin.create_topics([NewTopic(n, 1, replication_factor=1) for n in names[start:start + 200]],
                                          operation_timeout=60)
            for future in futures.values():
                future.result(timeout=120)
        producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20})
        for name in names:
            producer.produce(name, value=b'{"hello": "world"}')
        assert producer.flush(60) == 0
        url = f"http://127.0.0.1:{http_port}/ui/topics"

        server_ms = []
        size = 0
        for _ in range(args.loads):
            started = time.perf_counter()
            body = urllib.request.urlopen(url, timeout=30).read()
            server_ms.append((time.perf_counter() - started) * 1000)
            size = len(body)
            assert body.count(b"data-topic=") == args.topics

        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        options = webdriver.ChromeOptions()
        options.binary_location = shutil.which("chromium")
        for argument in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                         "--window-size=1280,1000"]:
            options.add_argument(argument)
        driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
        response_ms, load_ms = [], []
        try:
            for _ in range(args.loads):
                driver.get("about:blank")
                driver.get(url)
                timing = driver.execute_script(
                    "const t = performance.getEntriesByType('navigation')[0];"
                    "return [t.responseEnd, t.loadEventEnd];")
                response_ms.append(timing[0])
                load_ms.append(timing[1])
        finally:
            driver.quit()

        def line(label, values):
            values = sorted(values)
            print(f"  {label:<44} median {statistics.median(values):7.1f} ms   p90 {percentile(values, 90):7.1f} ms")

        print(f"/ui/topics with {args.topics} topics ({size / 1024:.0f} KiB of HTML), {args.loads} loads each:")
        line("server answer (HTTP client, whole body)", server_ms)
        line("chromium: response received", response_ms)
        line("chromium: page loaded and rendered (load)", load_ms)
    finally:
        stop_process(proc)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
