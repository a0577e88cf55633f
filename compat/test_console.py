"""The web console (/ui) in a real browser: Debian's chromium, headless, driven by Selenium
through chromium-driver, against a running broker with real data. Each page is loaded,
what it shows is checked, actions are performed (create and delete a topic, reset a
group's offsets, pause a webhook) and their results seen. Screenshots of every page go to
$SLUICE_SCREENSHOT_DIR (default .build/console-screenshots); docs/console.md shows a set.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path

import pytest
import requests
from confluent_kafka import Consumer, TopicPartition

from helpers import admin, create_topic, producer, produce_all

# Selenium, chromium and chromium-driver: installed by scripts/install-test-deps.sh.
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

SHOTS = Path(os.environ.get("SLUICE_SCREENSHOT_DIR", Path(__file__).parent.parent / ".build/console-screenshots"))


@pytest.fixture(scope="module")
def browser():
    chromium = shutil.which("chromium")
    driver_path = shutil.which("chromedriver")
    assert chromium and driver_path, "chromium and chromium-driver are installed by scripts/install-test-deps.sh"
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1280,1000", "--disable-extensions"]:
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(30)
    SHOTS.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()


def shot(driver, name: str) -> None:
    # The whole page: the window grows to the document's height for the picture.
    height = driver.execute_script("return Math.min(document.documentElement.scrollHeight, 4000)")
    width = driver.get_window_size()["width"]
    driver.set_window_size(width, max(height + 100, 600))
    driver.save_screenshot(str(SHOTS / f"{name}.png"))
    driver.set_window_size(width, 1000)


def text(driver, css: str) -> str:
    return driver.find_element(By.CSS_SELECTOR, css).text


def wait_for(driver, condition, timeout=15):
    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(condition)


def test_every_page_in_a_real_browser(make_broker, names, browser):
    b = make_broker(http=True)
    ui = b.http_url + "/ui"
    orders, events, group = names("orders"), names("events"), names("billing")
    create_topic(b.bootstrap, orders, partitions=3)
    create_topic(b.bootstrap, events, config={"retention.ms": "3600000"})
    p = producer(b.bootstrap)
    payments = [json.dumps({"order": i, "amount": 42 + i, "currency": "EUR"}).encode() for i in range(30)]
    for partition in range(3):
        for i in range(10):
            p.produce(orders, key=f"customer-{partition}-{i}".encode(), value=payments[partition * 10 + i],
                      partition=partition, headers=[("source", b"checkout"), ("trace", bytes([0, 1, 2, 255]))])
    p.produce(events, key=b"blob", value=bytes(range(256)), partition=0)
    p.produce(events, key=None, value=b"plain text line", partition=0)
    assert p.flush(15) == 0

    # A consumer group that read partition 0 and half of partition 1, then left.
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": group, "enable.auto.commit": False})
    c.commit(offsets=[TopicPartition(orders, 0, 10), TopicPartition(orders, 1, 5), TopicPartition(orders, 2, 0)],
             asynchronous=False)
    c.close()
    # A webhook subscription (its receiver need not exist: it is paused from the console).
    hook = names("hook")
    created = requests.post(b.http_url + "/v1/webhooks", json={"name": hook, "topic": events,
                            "url": "http://127.0.0.1:9/never"}, timeout=10)
    assert created.status_code in (200, 201), created.text

    # Overview: the figures, then live figures over Server-Sent Events as records arrive.
    browser.get(ui)
    assert browser.title.startswith("Overview")
    assert int(text(browser, "#topic-count")) >= 2
    assert text(browser, "#offline-partitions") == "0"
    assert text(browser, "#cluster-id")
    keep = producer(b.bootstrap, **{"linger.ms": 0})
    deadline = time.monotonic() + 20
    rate = "–"
    while time.monotonic() < deadline:
        keep.produce(events, value=b"x" * 10, partition=0)
        keep.poll(0)
        time.sleep(0.1)
        rate = text(browser, "#records-in-rate")
        if rate not in ("–", "0.0", "0"):
            break
    keep.flush(10)
    assert rate not in ("–", "0.0", "0"), "the overview's rate never updated live"
    assert int(text(browser, "#connections")) >= 1
    shot(browser, "overview")

    # Topics: both, with their record counts.
    browser.get(ui + "/topics")
    row = browser.find_element(By.CSS_SELECTOR, f'tr[data-topic="{orders}"]')
    cells = [cell.text for cell in row.find_elements(By.CSS_SELECTOR, "th, td")]
    assert cells[0] == orders and cells[1] == "3" and cells[2] == "30"
    shot(browser, "topics")

    # A topic: partitions and high watermarks; its configs.
    browser.find_element(By.LINK_TEXT, orders).click()
    wait_for(browser, expected_conditions.title_contains(orders))
    assert [e.text for e in browser.find_elements(By.CSS_SELECTOR, "td[data-hwm]")] == ["10", "10", "10"]
    shot(browser, "topic")

    # Records: JSON pretty-printed, headers (one binary), by offset, by key.
    browser.get(f"{ui}/topics/{orders}/records?partition=1&offset=3")
    first = browser.find_element(By.CSS_SELECTOR, "#records > li")
    assert first.get_attribute("data-offset") == "3"
    value = first.find_element(By.CSS_SELECTOR, "pre.value").text
    assert '"amount" : 55' in value or '"amount": 55' in value, value
    assert "\n" in value  # pretty-printed
    assert "customer-1-3" in first.find_element(By.CSS_SELECTOR, "code.key").text
    assert "checkout" in first.text and "00 01 02 ff" in first.text
    assert len(browser.find_elements(By.CSS_SELECTOR, "#records > li")) == 7
    shot(browser, "records")
    browser.get(f"{ui}/topics/{orders}/records?partition=2&offset=0&key=customer-2-7")
    found = browser.find_elements(By.CSS_SELECTOR, "#records > li")
    assert [li.get_attribute("data-offset") for li in found] == ["7"]
    # Binary values as hex, or base64 when asked; plain text as is.
    browser.get(f"{ui}/topics/{events}/records?partition=0&offset=0")
    values = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "pre.value")]
    assert values[0].startswith("00 01 02 03") and values[1] == "plain text line"
    browser.get(f"{ui}/topics/{events}/records?partition=0&offset=0&binary=base64")
    assert text(browser, "pre.value").startswith("AAECAwQFBgc")

    # Groups: the lag, per partition and as a chart; reset to the earliest offsets.
    browser.get(ui + "/groups")
    row = browser.find_element(By.CSS_SELECTOR, f'tr[data-group="{group}"]')
    assert row.find_elements(By.CSS_SELECTOR, "td")[-1].text == "15"
    shot(browser, "groups")
    browser.find_element(By.LINK_TEXT, group).click()
    wait_for(browser, expected_conditions.title_contains(group))
    assert text(browser, "#group-lag") == "15"
    assert text(browser, f'tr[data-partition="{orders}-1"] td.lag') == "5"
    assert browser.find_element(By.CSS_SELECTOR, "svg#lag-chart")
    shot(browser, "group")
    browser.find_element(By.CSS_SELECTOR, "#reset-to option[value=earliest]").click()
    browser.find_element(By.XPATH, "//button[text()='Reset offsets']").click()
    wait_for(browser, expected_conditions.alert_is_present()).accept()
    wait_for(browser, lambda d: "reset" in d.find_element(By.CSS_SELECTOR, ".notice").text)
    assert text(browser, "#group-lag") == "30"
    committed = Consumer({"bootstrap.servers": b.bootstrap, "group.id": group}).committed(
        [TopicPartition(orders, i) for i in range(3)], timeout=10)
    assert [tp.offset for tp in committed] == [0, 0, 0]

    # Create a topic with the form, then delete it (typing its name, confirming).
    created_name = names("made")
    browser.get(ui + "/topics")
    browser.find_element(By.ID, "create-name").send_keys(created_name)
    partitions = browser.find_element(By.ID, "create-partitions")
    partitions.clear()
    partitions.send_keys("4")
    browser.find_element(By.ID, "create-configs").send_keys("retention.ms=60000")
    browser.find_element(By.XPATH, "//button[text()='Create topic']").click()
    wait_for(browser, expected_conditions.title_contains(created_name))
    assert "created with 4 partitions" in text(browser, ".notice")
    assert "retention.ms" in text(browser, "#configs")
    metadata = admin(b.bootstrap).list_topics(timeout=10)
    assert len(metadata.topics[created_name].partitions) == 4
    browser.find_element(By.ID, "confirm-name").send_keys(created_name)
    browser.find_element(By.XPATH, "//button[text()='Delete topic']").click()
    wait_for(browser, expected_conditions.alert_is_present()).accept()
    wait_for(browser, expected_conditions.title_is("Topics · Sluice"))
    assert "deleted" in text(browser, ".notice")
    assert created_name not in admin(b.bootstrap).list_topics(timeout=10).topics

    # Webhooks: pause from the console; the API sees it paused.
    browser.get(ui + "/webhooks")
    row = browser.find_element(By.CSS_SELECTOR, f'tr[data-webhook="{hook}"]')
    assert row.find_element(By.CSS_SELECTOR, "td.state").text == "running"
    row.find_element(By.XPATH, ".//button[text()='Pause']").click()
    wait_for(browser, lambda d: "paused" in d.find_element(By.CSS_SELECTOR, ".notice").text)
    assert browser.find_element(By.CSS_SELECTOR, f'tr[data-webhook="{hook}"] td.state').text == "paused"
    assert requests.get(f"{b.http_url}/v1/webhooks/{hook}", timeout=10).json()["state"] == "paused"
    shot(browser, "webhooks")

    for page, name in [("/udp", "udp"), ("/quotas", "quotas")]:
        browser.get(ui + page)
        assert browser.find_element(By.TAG_NAME, "h1").text
        shot(browser, name)

    # A narrow screen: nothing wider than the window; the tables scroll inside themselves.
    browser.set_window_size(390, 844)
    for page in ["", "/topics", f"/topics/{orders}/records?partition=0"]:
        browser.get(ui + page)
        overflow = browser.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{page or '/'} is {overflow}px wider than a 390px screen"
    browser.save_screenshot(str(SHOTS / "narrow-overview.png"))
    browser.set_window_size(1280, 1000)

    # Keyboard: the first Tab reaches the skip link, which leads to the main content.
    browser.get(ui + "/topics")
    browser.find_element(By.TAG_NAME, "body").send_keys("\t")
    assert browser.switch_to.active_element.get_attribute("class") == "skip"


def test_pages_read_without_javascript_and_forms_need_the_token(make_broker, names):
    b = make_broker(http=True)
    topic = names()
    create_topic(b.bootstrap, topic)
    produce_all(producer(b.bootstrap), topic, [b'{"n": 1}'])
    # Server-rendered: the content is in the HTML itself.
    html = requests.get(b.http_url + "/ui/topics", timeout=10).text
    assert f'data-topic="{topic}"' in html
    records = requests.get(f"{b.http_url}/ui/topics/{topic}/records?partition=0", timeout=10)
    assert records.status_code == 200 and "&quot;n&quot;" in records.text
    assert "default-src 'self'" in records.headers["Content-Security-Policy"]
    # A form without this broker's token, or from another site, changes nothing.
    token = re.search(r'name="csrf" value="([^"]+)"', html).group(1)
    refused = requests.post(f"{b.http_url}/ui/topics/{topic}/delete", data={"confirm": topic}, timeout=10,
                            allow_redirects=False)
    assert refused.status_code == 403
    cross = requests.post(f"{b.http_url}/ui/topics/{topic}/delete", data={"confirm": topic, "csrf": token},
                          headers={"Origin": "http://evil.example"}, timeout=10, allow_redirects=False)
    assert cross.status_code == 403
    assert topic in admin(b.bootstrap).list_topics(timeout=10).topics
    null_origin = requests.post(f"{b.http_url}/ui/topics", data={"name": "x", "partitions": "1", "csrf": token},
                                headers={"Origin": "null"}, timeout=10, allow_redirects=False)
    cross_site = requests.post(f"{b.http_url}/ui/topics", data={"name": "x", "partitions": "1", "csrf": token},
                               headers={"Sec-Fetch-Site": "cross-site"}, timeout=10, allow_redirects=False)
    assert null_origin.status_code == 403 and cross_site.status_code == 403
    assert "x" not in admin(b.bootstrap).list_topics(timeout=10).topics
    ok = requests.post(f"{b.http_url}/ui/topics/{topic}/delete", data={"confirm": topic, "csrf": token},
                       timeout=10, allow_redirects=False)
    assert ok.status_code == 303 and ok.headers["Location"].startswith("/ui/topics?notice=")
    assert topic not in admin(b.bootstrap).list_topics(timeout=10).topics
    # Unknown pages and topics answer 404 pages; the metrics label them from a fixed set.
    for path in ["/ui/nope-123", "/ui/topics/missing", "/ui/a/b/c/d/e"]:
        assert requests.get(b.http_url + path, timeout=10).status_code == 404
    metrics = requests.get(b.http_url + "/metrics", timeout=10).text
    assert 'route="/ui/unmatched",code="404"' in metrics and "nope-123" not in metrics and "missing" not in metrics

    # Pages of the record browser follow each other without a gap or a repeat.
    paged = names("paged")
    create_topic(b.bootstrap, paged)
    produce_all(producer(b.bootstrap), paged, [b"r%d" % i for i in range(120)])
    seen, url = [], f"{b.http_url}/ui/topics/{paged}/records?partition=0&offset=0"
    while url and len(seen) < 200:
        page = requests.get(url, timeout=10).text
        seen += [int(o) for o in re.findall(r'<li data-offset="(\d+)"', page)]
        found = re.search(r'<a href="([^"]+)" rel="next">', page)
        url = b.http_url + found.group(1).replace("&amp;", "&") if found else None
    assert seen == list(range(120))
