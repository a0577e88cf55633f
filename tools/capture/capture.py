#!/usr/bin/env python3
"""Runs real Kafka clients against fake_broker.FakeBroker and saves each distinct
(client, apiKey, apiVersion[, variant]) request frame as a byte-exact fixture:

    Tests/KafkaProtocolTests/Fixtures/captured/<client>-<ApiName>-v<version>[-<variant>].bin
    Tests/KafkaProtocolTests/Fixtures/captured/MANIFEST.json

Variants: Produce frames are named by scenario (none/gzip/snappy/lz4/zstd codec,
batch100, acks0, idempotent); Metadata frames asking for all topics get '-all' and
those asking for no topics (brokers only) '-notopics'. Other frames keep the first
one seen per (client, api, version).

Usage: python3 tools/capture/capture.py [--out DIR] [--only CLIENT[,CLIENT]] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

import records as R  # noqa: E402
from fake_broker import FakeBroker  # noqa: E402
from kafka_codec import decode_record_batches  # noqa: E402

TOPIC = "sluice-capture"
DEFAULT_OUT = os.path.join(REPO, "Tests", "KafkaProtocolTests", "Fixtures", "captured")
SCENARIO_TIMEOUT = 25  # seconds; the client process group is killed after this


def client_versions() -> dict[str, str]:
    out = {}
    try:
        v = subprocess.run(["kcat", "-V"], capture_output=True, text=True, timeout=10).stdout
        ver = next((l.split()[1] for l in v.splitlines() if l.startswith("Version ")), "?")
        rdk = v.split("librdkafka ")[1].split()[0] if "librdkafka " in v else "?"
        out["kcat"] = f"kcat {ver} (librdkafka {rdk})"
    except (OSError, subprocess.SubprocessError):
        out["kcat"] = "kcat (not installed)"
    from importlib import metadata

    try:
        import confluent_kafka

        out["confluent"] = f"confluent-kafka {confluent_kafka.__version__} (librdkafka {confluent_kafka.libversion()[0]})"
    except ImportError:
        out["confluent"] = "confluent-kafka (not installed)"
    for name, dist in (("kafkapython", "kafka-python"), ("aiokafka", "aiokafka")):
        try:
            out[name] = f"{dist} {metadata.version(dist)}"
        except metadata.PackageNotFoundError:
            out[name] = f"{dist} (not installed)"
    return out


def scenarios(bootstrap: str) -> list[dict]:
    py = [sys.executable, os.path.join(HERE, "clients.py")]
    s = [{"client": "kcat", "name": "metadata", "cmd": ["kcat", "-L", "-b", bootstrap, "-m", "5"]}]
    for codec in R.CODECS:
        # librdkafka before 2.10 sends gzip/snappy/lz4 batches uncompressed ("Broker does not
        # support compression type") unless Produce v0 lies inside the advertised range; for
        # these three the fake broker advertises Produce 0-10 so the real compressed frames
        # from kcat can be captured (the manifest records the override).
        adv = {0: (0, 10)} if codec in ("gzip", "snappy", "lz4") else None
        s.append({"client": "kcat", "name": f"produce-{codec}", "variant": codec, "advertise": adv,
                  "cmd": ["kcat", "-P", "-b", bootstrap, "-t", TOPIC, "-p", "0", "-K:", "-H", "h1=v1",
                          "-z", codec, "-X", "linger.ms=200", "-X", "message.timeout.ms=8000"],
                  "stdin": R.kcat_input(codec)})
    s.append({"client": "kcat", "name": "consume",
              "cmd": ["kcat", "-C", "-b", bootstrap, "-t", TOPIC, "-p", "0", "-o", "beginning", "-e", "-q"]})
    s.append({"client": "confluent", "name": "metadata", "cmd": py + ["confluent", "metadata", bootstrap, TOPIC]})
    for client, variants in (("confluent", R.CODECS + ["batch100", "acks0"]),
                             ("kafkapython", R.CODECS), ("aiokafka", R.CODECS + ["idempotent"])):
        for v in variants:
            s.append({"client": client, "name": f"produce-{v}", "variant": v,
                      "cmd": py + [client, "produce", bootstrap, TOPIC, v]})
        s.append({"client": client, "name": "consume", "cmd": py + [client, "consume", bootstrap, TOPIC]})
    return s


def run_client(sc: dict) -> tuple[int | None, str]:
    env = dict(os.environ, PYTHONPATH=HERE + os.pathsep + os.environ.get("PYTHONPATH", ""))
    p = subprocess.Popen(sc["cmd"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         start_new_session=True, env=env)
    try:
        out, _ = p.communicate(sc.get("stdin", b""), timeout=SCENARIO_TIMEOUT)
        return p.returncode, out.decode(errors="replace")
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, _ = p.communicate()
        return None, out.decode(errors="replace")


def jsonable(v):
    if isinstance(v, dict):
        return {k: jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if isinstance(v, bytes):
        return str(uuid.UUID(bytes=v)) if len(v) == 16 else v.hex()
    return v


def text(b: bytes | None) -> str | None:
    return None if b is None else b.decode()


def request_summary(api_key: int, req: dict) -> dict:
    """The decoded request, without record bytes (Produce records are described separately)."""
    if api_key == 0:
        req = json.loads(json.dumps(req, default=lambda b: None))  # deep copy; records dropped below
        for t in req["TopicData"]:
            for p in t["PartitionData"]:
                p.pop("Records", None)
        return req
    return jsonable(req)


def produce_info(frame: dict, variant: str, warnings: list[str], label: str) -> dict:
    req = frame["request"]
    if len(req["TopicData"]) != 1 or len(req["TopicData"][0]["PartitionData"]) != 1:
        warnings.append(f"{label}: Produce has {len(req['TopicData'])} topics; describing the first partition only")
    t = req["TopicData"][0]
    p = t["PartitionData"][0]
    batches = decode_record_batches(p["Records"])
    got = [(r["key"], r["value"], [(text(hk), hv) for hk, hv in r["headers"]]) for b in batches for r in b["records"]]
    want = R.records_for(variant)
    if got != want:
        warnings.append(f"{label}: records differ from the intended ones: got {got[:4]}...")
    codecs = sorted({b["compression"] for b in batches})
    if variant in R.CODECS and codecs != [variant]:
        warnings.append(f"{label}: batch compression {codecs}, expected {variant}")
    if not all(b["crcValid"] for b in batches):
        warnings.append(f"{label}: CRC-32C mismatch")
    first = batches[0]
    info = {
        "topic": t["Name"],
        "partition": p["Index"],
        "acks": req["Acks"],
        "transactionalId": req.get("TransactionalId"),
        "compression": codecs[0] if len(codecs) == 1 else codecs,
        "batchCount": len(batches),
        "recordsBytes": len(p["Records"]),
        "producerId": first["producerId"],
        "producerEpoch": first["producerEpoch"],
        "baseSequence": first["baseSequence"],
        "partitionLeaderEpoch": first["partitionLeaderEpoch"],
        "attributes": first["attributes"],
        "records": [{"key": text(k), "value": text(v), "headers": [[hk, text(hv)] for hk, hv in h]} for k, v, h in got],
    }
    if "snappyFraming" in first:
        info["snappyFraming"] = first["snappyFraming"]
    return info


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--only", help="comma-separated clients: kcat,confluent,kafkapython,aiokafka")
    ap.add_argument("--keep", action="store_true", help="do not delete existing fixtures first")
    args = ap.parse_args()
    only = set(args.only.split(",")) if args.only else None

    versions = client_versions()
    broker = FakeBroker("127.0.0.1", 0, topics=[TOPIC], log=lambda m: print(f"  broker: {m}"))
    broker.start_in_thread()
    bootstrap = f"127.0.0.1:{broker.port}"
    print(f"fake broker on {bootstrap}")

    os.makedirs(args.out, exist_ok=True)
    manifest_path = os.path.join(args.out, "MANIFEST.json")
    entries: dict[str, dict] = {}
    if args.keep and os.path.exists(manifest_path):
        with open(manifest_path) as f:
            entries = {e["file"]: e for e in json.load(f)["files"]}
    elif not args.keep:
        for fn in os.listdir(args.out):
            if fn.endswith(".bin") or fn == "MANIFEST.json":
                os.remove(os.path.join(args.out, fn))

    warnings: list[str] = []
    seen: set[tuple] = set()
    for sc in scenarios(bootstrap):
        client = sc["client"]
        if only and client not in only:
            continue
        if client != "kcat" and versions[client].endswith("(not installed)"):
            warnings.append(f"{client}: not installed, skipped")
            continue
        label = f"{client}/{sc['name']}"
        broker.set_label(label, sc.get("advertise"))
        t0 = time.time()
        rc, out = run_client(sc)
        time.sleep(0.3)  # let the broker log the last frames
        frames = broker.take_frames()
        apis = ", ".join(f"{broker.schema_name(f['header']['apiKey'])}v{f['header']['apiVersion']}" for f in frames)
        print(f"{label}: rc={rc} {time.time() - t0:.1f}s {len(frames)} frames: {apis}")
        if rc != 0:
            warnings.append(f"{label}: exit {rc}: {out.strip()[-500:]}")
        produce_seen = 0
        for fr in frames:
            h = fr["header"]
            key, ver = h["apiKey"], h["apiVersion"]
            if "request" not in fr:
                warnings.append(f"{label}: {broker.schema_name(key)} v{ver} not decoded ({fr.get('error', 'no request')})")
                continue
            variant = ""
            if key == 0:
                produce_seen += 1
                if produce_seen > 1:
                    warnings.append(f"{label}: extra Produce frame #{produce_seen} not saved")
                    continue
                variant = sc.get("variant", "")
            elif key == 3:
                topics = fr["request"].get("Topics")
                if topics is None or (ver == 0 and not topics):
                    variant = "all"
                elif not topics:
                    variant = "notopics"
            ident = (client, key, ver, variant)
            if ident in seen:
                continue
            seen.add(ident)
            api = broker.schema_name(key)
            fn = f"{client}-{api}-v{ver}" + (f"-{variant}" if variant else "") + ".bin"
            with open(os.path.join(args.out, fn), "wb") as f:
                f.write(fr["raw"])
            e = {
                "file": fn,
                "client": client,
                "clientVersion": versions[client],
                "scenario": sc["name"],
                "apiKey": key,
                "apiName": api,
                "apiVersion": ver,
                "correlationId": h["correlationId"],
                "clientId": h["clientId"],
                "size": len(fr["raw"]),
                "request": request_summary(key, fr["request"]),
            }
            if "trailingBytes" in fr:
                e["trailingBytes"] = fr["trailingBytes"]  # bytes after the body the definitions describe
            if sc.get("advertise"):
                e["brokerAdvertiseOverride"] = {broker.schema_name(k): f"{lo}-{hi}"
                                                for k, (lo, hi) in sc["advertise"].items()}
            if key == 0:
                e["produce"] = produce_info(fr, variant, warnings, label)
            entries[fn] = e
        if sc.get("variant") and produce_seen == 0:
            warnings.append(f"{label}: no Produce frame captured")

    broker.stop()
    files = sorted(entries.values(), key=lambda e: e["file"])
    manifest = {
        "about": "Request frames captured from real Kafka clients by tools/capture/capture.py against "
                 "tools/capture/fake_broker.py. Each .bin is one whole request frame including its 4-byte "
                 "size prefix. 'request' is the body decoded with the Kafka JSON message definitions "
                 "(Produce record bytes are described under 'produce' instead).",
        "topic": TOPIC,
        "clients": {k: v for k, v in versions.items() if any(e["client"] == k for e in files)},
        "files": files,
    }
    with open(manifest_path, "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    total = sum(e["size"] for e in files)
    print(f"\n{len(files)} fixtures, {total} bytes, in {os.path.relpath(args.out, REPO)}")
    for w in warnings:
        print(f"WARNING: {w}")


if __name__ == "__main__":
    main()
