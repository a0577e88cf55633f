"""Security with real clients: TLS and SASL listeners, SCRAM and PLAIN, client certificates,
ACLs, and the `sluice user` / `sluice acl` commands (docs/security.md).

One broker serves four listeners: PLAINTEXT (the fixture's port), SASL_SSL, SASL_PLAINTEXT
and SSL with client certificates required. Certificates come from openssl, made per run.
"""

import signal
import socket
import ssl
import struct
import subprocess
import time

import pytest
from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import SluiceBroker, free_port, sluice_binary

ADMIN, ADMIN_PW = "admin", "admin-secret"
ALICE, ALICE_PW = "alice", "alice-secret"


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_certificates(directory):
    """A CA, a broker certificate for localhost/127.0.0.1, and a client certificate CN=carol."""
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
            "-days", "2", "-subj", "/CN=Sluice Test CA", cwd=directory)
    (directory / "san.cnf").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    # A second CA the broker does not trust, for a client certificate it must refuse.
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "other-ca.key", "-out", "other-ca.pem",
            "-days", "2", "-subj", "/CN=Someone Else's CA", cwd=directory)
    for name, subject, extension, ca, days in [
        ("broker", "/CN=localhost", ["-extfile", "san.cnf"], "ca", "2"),
        ("broker2", "/CN=localhost-rotated", ["-extfile", "san.cnf"], "ca", "2"),
        ("carol", "/O=Acme/OU=eng/CN=carol", [], "ca", "2"),
        ("mallory", "/CN=mallory", [], "other-ca", "2"),  # signed by a CA the broker does not trust
        ("expired", "/CN=carol", [], "ca", "-1"),  # expired yesterday
    ]:
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                "-subj", subject, cwd=directory)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key", "-CAcreateserial",
                "-out", f"{name}.pem", "-days", days, *extension, cwd=directory)


def sluice(*args, input=None, check=True):
    result = subprocess.run([str(sluice_binary()), *args], input=input, capture_output=True, text=True, timeout=60)
    if check:
        assert result.returncode == 0, f"sluice {' '.join(args)}: {result.stderr}"
    return result


def wait_for_listener(broker, port, timeout=10):
    """Returns once `port` accepts connections (SluiceBroker.start waits for its first one)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            assert time.monotonic() < deadline, broker.log_tail()
            time.sleep(0.05)


class Secure:
    """The broker and what clients need to reach each listener."""

    def __init__(self, broker, certs, ports):
        self.broker = broker
        self.certs = certs
        self.ports = ports

    def conf(self, protocol, user=ADMIN, password=ADMIN_PW, mechanism="SCRAM-SHA-512"):
        conf = {"bootstrap.servers": f"127.0.0.1:{self.ports[protocol]}", "security.protocol": protocol}
        if "SASL" in protocol:
            conf.update({"sasl.mechanism": mechanism, "sasl.username": user, "sasl.password": password})
        if "SSL" in protocol:
            conf["ssl.ca.location"] = str(self.certs / "ca.pem")
        return conf

    def cli(self, user=ADMIN, password=ADMIN_PW):
        """`sluice` client arguments for the SASL_SSL listener, settings from a properties file."""
        path = self.certs / f"{user}.properties"
        path.write_text(
            "# shared with kcat -F\n"
            f"bootstrap.servers=127.0.0.1:{self.ports['SASL_SSL']}\n"
            "security.protocol=SASL_SSL\nsasl.mechanisms=SCRAM-SHA-512\n"
            f"sasl.username={user}\nsasl.password={password}\nssl.ca.location={self.certs / 'ca.pem'}\n")
        return ["--bootstrap", f"127.0.0.1:{self.ports['SASL_SSL']}", "--command-config", str(path)]


@pytest.fixture(scope="module")
def secure(tmp_path_factory):
    certs = tmp_path_factory.mktemp("certs")
    make_certificates(certs)
    (certs / "live.pem").write_bytes((certs / "broker.pem").read_bytes())
    (certs / "live.key").write_bytes((certs / "broker.key").read_bytes())
    data = tmp_path_factory.mktemp("sluice-secure") / "data"
    # The first admin, created offline before the broker starts (password from stdin).
    sluice("user", "add", ADMIN, "--data-dir", str(data), input=ADMIN_PW + "\n")
    ports = {}
    while len(set(ports.values())) < 4:
        ports = {p: free_port() for p in ["SASL_SSL", "SASL_PLAINTEXT", "SSL", "HTTPS"]}
    args = [
        "--http-listen", f"https://127.0.0.1:{ports['HTTPS']}",
        "--listen", f"SASL_SSL://127.0.0.1:{ports['SASL_SSL']}",
        "--listen", f"SASL_PLAINTEXT://127.0.0.1:{ports['SASL_PLAINTEXT']}",
        "--listen", f"SSL://127.0.0.1:{ports['SSL']}",
    ]
    settings = {
        "ssl.certificate.location": str(certs / "live.pem"),
        "ssl.key.location": str(certs / "live.key"),
        "ssl.ca.location": str(certs / "ca.pem"),
        "ssl.client.auth": "required",
        "super.users": f"User:{ADMIN}",
        "num.partitions": "1",
    }
    broker = SluiceBroker(data, settings, extra_args=args).start()
    ports["PLAINTEXT"] = broker.port
    for port in ports.values():  # every listener is up
        wait_for_listener(broker, port)
    yield Secure(broker, certs, ports)
    status = broker.stop()
    assert status == 0, broker.log_tail()


def produce(conf, topic, value=b"v", timeout=15):
    results = []
    producer = Producer({**conf, "linger.ms": 0, "message.timeout.ms": int(timeout * 1000)})
    producer.produce(topic, value, callback=lambda err, msg: results.append(err))
    producer.flush(timeout + 5)
    assert len(results) == 1
    return results[0]


def consume_one(conf, topic, group, timeout=20):
    consumer = Consumer({**conf, "group.id": group, "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            if message.error():
                return message.error()
            return message.value()
        return None
    finally:
        consumer.close()


@pytest.mark.parametrize("protocol", ["SASL_SSL", "SASL_PLAINTEXT"])
@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"])
def test_librdkafka_authenticates_and_round_trips(secure, names, protocol, mechanism):
    topic = names()
    conf = secure.conf(protocol, mechanism=mechanism)
    assert produce(conf, topic, b"hello") is None
    assert consume_one(conf, topic, names("g")) == b"hello"


def test_wrong_password_is_refused(secure):
    admin = AdminClient({**secure.conf("SASL_SSL", password="wrong"), "client.id": "wrong-pw"})
    with pytest.raises(KafkaException) as raised:
        admin.list_topics(timeout=5)
    # librdkafka reports the broker's SASL_AUTHENTICATION_FAILED as an authentication error.
    assert "Authentication failed" in str(raised.value) or "_AUTHENTICATION" in str(raised.value) or \
        "Local: Broker transport failure" in str(raised.value)


def test_requests_before_authentication_close_the_connection(secure):
    with socket.create_connection(("127.0.0.1", secure.ports["SASL_PLAINTEXT"]), timeout=5) as sock:
        # Metadata v0 with no topics, before any SaslHandshake.
        header = struct.pack(">hhih", 3, 0, 7, 1) + b"x"
        body = struct.pack(">i", 0)
        sock.sendall(struct.pack(">i", len(header) + len(body)) + header + body)
        assert sock.recv(4) == b""  # closed without an answer


def test_handshake_v0_then_bare_plain_token(secure):
    """kafka-python's framing: SaslHandshake v0, then the PLAIN token as a bare frame."""
    with socket.create_connection(("127.0.0.1", secure.ports["SASL_PLAINTEXT"]), timeout=5) as sock:
        mechanism = b"PLAIN"
        header = struct.pack(">hhih", 17, 0, 1, 1) + b"x"
        body = struct.pack(">h", len(mechanism)) + mechanism
        sock.sendall(struct.pack(">i", len(header) + len(body)) + header + body)
        size = struct.unpack(">i", sock.recv(4))[0]
        response = sock.recv(size)
        assert struct.unpack(">ih", response[:6]) == (1, 0)  # correlation id, no error
        token = b"\0" + ADMIN.encode() + b"\0" + ADMIN_PW.encode()
        sock.sendall(struct.pack(">i", len(token)) + token)
        assert sock.recv(4) == b"\0\0\0\0"  # success: an empty frame
        # Authenticated: an ordinary request is served now (ApiVersions v0).
        header = struct.pack(">hhih", 18, 0, 2, 1) + b"x"
        sock.sendall(struct.pack(">i", len(header)) + header)
        size = struct.unpack(">i", sock.recv(4))[0]
        answer = b""
        while len(answer) < size:
            answer += sock.recv(size - len(answer))
        assert struct.unpack(">ih", answer[:6]) == (2, 0)


def test_kafka_python_and_aiokafka_scram(secure, names):
    from kafka import KafkaProducer

    topic = names()
    producer = KafkaProducer(
        bootstrap_servers=f"127.0.0.1:{secure.ports['SASL_PLAINTEXT']}", security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="SCRAM-SHA-256", sasl_plain_username=ADMIN, sasl_plain_password=ADMIN_PW)
    producer.send(topic, b"from-kafka-python").get(timeout=20)
    producer.close()

    import asyncio

    from aiokafka import AIOKafkaConsumer
    from aiokafka.helpers import create_ssl_context

    async def read():
        consumer = AIOKafkaConsumer(
            topic, bootstrap_servers=f"127.0.0.1:{secure.ports['SASL_SSL']}", security_protocol="SASL_SSL",
            ssl_context=create_ssl_context(cafile=str(secure.certs / "ca.pem")), sasl_mechanism="SCRAM-SHA-512",
            sasl_plain_username=ADMIN, sasl_plain_password=ADMIN_PW, auto_offset_reset="earliest")
        await consumer.start()
        try:
            message = await asyncio.wait_for(consumer.getone(), 20)
            return message.value
        finally:
            await consumer.stop()

    assert asyncio.run(read()) == b"from-kafka-python"


def test_acls_with_users_managed_by_the_cli(secure, names):
    topic, hidden, group = names(), names(), names("g")
    cli = secure.cli()
    sluice("user", "add", ALICE, "--mechanism", "SCRAM-SHA-512", *cli, input=ALICE_PW + "\n")
    assert ALICE in sluice("user", "list", *cli).stdout
    sluice("topic", "create", topic, *cli)
    sluice("topic", "create", hidden, *cli)
    alice = secure.conf("SASL_SSL", user=ALICE, password=ALICE_PW)

    # Authenticated but no ACL: nothing (allow.everyone.if.no.acl.found is false).
    assert produce(alice, topic, timeout=5).name() == "TOPIC_AUTHORIZATION_FAILED"
    assert topic not in AdminClient(alice).list_topics(timeout=10).topics

    sluice("acl", "add", "--principal", f"User:{ALICE}", "--operation", "WRITE", "--operation", "READ",
           "--topic", topic, *cli)
    sluice("acl", "add", "--principal", f"User:{ALICE}", "--operation", "READ", "--group", group, *cli)
    listed = sluice("acl", "list", "--principal", f"User:{ALICE}", *cli).stdout
    assert f"ALLOW\tUser:{ALICE}\t*\tWRITE\tTOPIC\tLITERAL\t{topic}" in listed

    assert produce(alice, topic, b"allowed") is None
    assert produce(alice, hidden, timeout=5).name() == "TOPIC_AUTHORIZATION_FAILED"
    # Nothing refused was written: the hidden topic is still empty.
    probe = Consumer({**secure.conf("SASL_SSL"), "group.id": names("probe")})
    from confluent_kafka import TopicPartition
    assert probe.get_watermark_offsets(TopicPartition(hidden, 0), timeout=10) == (0, 0)
    probe.close()
    visible = AdminClient(alice).list_topics(timeout=10).topics
    assert topic in visible and hidden not in visible
    assert consume_one(alice, topic, group) == b"allowed"
    error = consume_one(alice, topic, names("other-group"))
    assert error is not None and error.name() == "GROUP_AUTHORIZATION_FAILED"

    # Alice may not create topics or manage ACLs.
    alice_admin = AdminClient(alice)
    futures = alice_admin.create_topics([NewTopic(names(), 1, 1)])
    with pytest.raises(KafkaException) as raised:
        list(futures.values())[0].result(10)
    assert raised.value.args[0].name() == "TOPIC_AUTHORIZATION_FAILED"
    denied = sluice("acl", "add", "--principal", f"User:{ALICE}", "--operation", "ALL", "--cluster",
                    *secure.cli(ALICE, ALICE_PW), check=False)
    assert denied.returncode == 2 and "CLUSTER_AUTHORIZATION_FAILED" in denied.stderr

    # A DENY wins over the ALLOW.
    sluice("acl", "add", "--principal", f"User:{ALICE}", "--operation", "WRITE", "--topic", topic, "--deny", *cli)
    assert produce(alice, topic, timeout=5).name() == "TOPIC_AUTHORIZATION_FAILED"
    removed = sluice("acl", "remove", "--principal", f"User:{ALICE}", "--topic", topic, "--deny", *cli).stdout
    assert "DENY" in removed
    assert produce(alice, topic, b"again") is None

    # Anonymous on the PLAINTEXT listener: denied, as no ACL allows User:ANONYMOUS.
    assert produce({"bootstrap.servers": secure.broker.bootstrap}, topic, timeout=5).name() == \
        "TOPIC_AUTHORIZATION_FAILED"

    # kcat, with the same properties file.
    kcat = subprocess.run(
        ["kcat", "-F", str(secure.certs / f"{ALICE}.properties"), "-L", "-J"], capture_output=True, text=True,
        timeout=30)
    assert kcat.returncode == 0, kcat.stderr
    assert topic in kcat.stdout and hidden not in kcat.stdout


def test_client_certificate_names_the_principal(secure, names):
    topic = names()
    sluice("topic", "create", topic, *secure.cli())
    conf = {
        "bootstrap.servers": f"127.0.0.1:{secure.ports['SSL']}", "security.protocol": "SSL",
        "ssl.ca.location": str(secure.certs / "ca.pem"),
        "ssl.certificate.location": str(secure.certs / "carol.pem"),
        "ssl.key.location": str(secure.certs / "carol.key"),
    }
    assert produce(conf, topic, timeout=5).name() == "TOPIC_AUTHORIZATION_FAILED"
    sluice("acl", "add", "--principal", "User:CN=carol,OU=eng,O=Acme", "--operation", "WRITE", "--topic", topic,
           *secure.cli())
    assert produce(conf, topic, b"by-certificate") is None

    # Without a client certificate the handshake fails (ssl.client.auth=required).
    context = ssl.create_default_context(cafile=str(secure.certs / "ca.pem"))
    with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError, OSError)):
        with socket.create_connection(("127.0.0.1", secure.ports["SSL"]), timeout=5) as raw:
            with context.wrap_socket(raw, server_hostname="localhost") as tls:
                tls.sendall(struct.pack(">i", 0))
                if tls.recv(4) == b"":
                    raise ConnectionResetError("closed")


def peer_subject(port, certs):
    context = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            return dict(item[0] for item in tls.getpeercert()["subject"])["commonName"]


def test_sighup_reloads_the_certificate_and_state_survives_a_restart(secure, names):
    assert peer_subject(secure.ports["SASL_SSL"], secure.certs) == "localhost"
    (secure.certs / "live.pem").write_bytes((secure.certs / "broker2.pem").read_bytes())
    (secure.certs / "live.key").write_bytes((secure.certs / "broker2.key").read_bytes())
    secure.broker.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while peer_subject(secure.ports["SASL_SSL"], secure.certs) != "localhost-rotated":
        assert time.monotonic() < deadline, secure.broker.log_tail()
        time.sleep(0.1)

    # Users and ACLs are in the data directory: after a restart they still hold.
    topic = names()
    sluice("topic", "create", topic, *secure.cli())
    sluice("user", "add", "dave", *secure.cli(), input="dave-secret\n")
    sluice("acl", "add", "--principal", "User:dave", "--operation", "WRITE", "--topic", topic, *secure.cli())
    secure.broker.restart()
    dave = secure.conf("SASL_PLAINTEXT", user="dave", password="dave-secret", mechanism="SCRAM-SHA-256")
    assert produce(dave, topic, b"after-restart") is None
    sluice("user", "delete", "dave", *secure.cli())
    assert "dave" not in sluice("user", "list", *secure.cli()).stdout


def test_http_api_uses_the_same_users_and_acls(secure, names):
    import requests

    base = f"https://127.0.0.1:{secure.ports['HTTPS']}"
    ca = str(secure.certs / "ca.pem")
    mine, other = names(), names()
    cli = secure.cli()
    sluice("topic", "create", mine, *cli)
    sluice("topic", "create", other, *cli)
    sluice("user", "add", "erin", *cli, input="erin-secret\n")
    sluice("acl", "add", "--principal", "User:erin", "--operation", "WRITE", "--topic", mine, *cli)
    body = {"records": [{"value": {"n": 1}}]}
    headers = {"Content-Type": "application/vnd.kafka.json.v2+json"}

    assert requests.get(base + "/", verify=ca, timeout=10).status_code == 200  # the root is open
    anonymous = requests.post(f"{base}/topics/{mine}", json=body, headers=headers, verify=ca, timeout=10)
    assert anonymous.status_code == 401 and "Basic" in anonymous.headers["WWW-Authenticate"]
    wrong = requests.post(f"{base}/topics/{mine}", json=body, headers=headers, auth=("erin", "nope"), verify=ca,
                          timeout=10)
    assert wrong.status_code == 401
    ok = requests.post(f"{base}/topics/{mine}", json=body, headers=headers, auth=("erin", "erin-secret"),
                       verify=ca, timeout=10)
    assert ok.status_code == 200, ok.text
    assert ok.json()["offsets"][0]["offset"] == 0
    denied = requests.post(f"{base}/topics/{other}", json=body, headers=headers, auth=("erin", "erin-secret"),
                           verify=ca, timeout=10)
    assert denied.status_code == 403 and denied.json()["error_code"] == 40301
    listed = requests.get(f"{base}/topics", auth=("erin", "erin-secret"), verify=ca, timeout=10).json()
    assert mine in listed and other not in listed
    assert requests.get(f"{base}/v1/webhooks", auth=("erin", "erin-secret"), verify=ca, timeout=10).status_code == 403
    admin = requests.get(f"{base}/topics", auth=(ADMIN, ADMIN_PW), verify=ca, timeout=10).json()
    assert mine in admin and other in admin

    # A consumer instance serves only its creator; a pattern subscription is refused.
    group = names("g")
    v2 = {"Content-Type": "application/vnd.kafka.v2+json"}
    created = requests.post(f"{base}/consumers/{group}", json={"name": "i1", "format": "json"}, headers=v2,
                            auth=(ADMIN, ADMIN_PW), verify=ca, timeout=10)
    assert created.status_code == 200, created.text
    sluice("acl", "add", "--principal", "User:erin", "--operation", "READ", "--group", group, *cli)
    stolen = requests.get(f"{base}/consumers/{group}/instances/i1/subscription", auth=("erin", "erin-secret"),
                          verify=ca, timeout=10)
    assert stolen.status_code == 404
    pattern = requests.post(f"{base}/consumers/{group}/instances/i1/subscription", json={"topic_pattern": ".*"},
                            headers=v2, auth=(ADMIN, ADMIN_PW), verify=ca, timeout=10)
    assert pattern.status_code == 403
    # A deleted user's password stops working at once (the verified-password cache follows).
    sluice("user", "delete", "erin", *cli)
    gone = requests.post(f"{base}/topics/{mine}", json=body, headers=headers, auth=("erin", "erin-secret"),
                         verify=ca, timeout=10)
    assert gone.status_code == 401


def test_confluent_admin_acls_and_scram_credentials(secure, names):
    """librdkafka's own ACL and SCRAM admin calls (CreateAcls, DescribeAcls, DeleteAcls,
    AlterUserScramCredentials, DescribeUserScramCredentials)."""
    from confluent_kafka.admin import (
        AclBinding, AclBindingFilter, AclOperation, AclPermissionType, ResourcePatternType, ResourceType,
        ScramCredentialInfo, ScramMechanism, UserScramCredentialDeletion, UserScramCredentialUpsertion)

    admin = AdminClient(secure.conf("SASL_SSL"))
    topic = names()
    binding = AclBinding(ResourceType.TOPIC, topic, ResourcePatternType.PREFIXED, "User:frank", "*",
                         AclOperation.READ, AclPermissionType.ALLOW)
    for future in admin.create_acls([binding]).values():
        assert future.result(10) is None
    described = admin.describe_acls(
        AclBindingFilter(ResourceType.TOPIC, topic, ResourcePatternType.MATCH, None, None, AclOperation.ANY,
                         AclPermissionType.ANY)).result(10)
    assert described == [binding]
    deleted = list(admin.delete_acls([AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY,
                                                       "User:frank", None, AclOperation.ANY,
                                                       AclPermissionType.ANY)]).values())[0].result(10)
    assert deleted == [binding]

    upsert = UserScramCredentialUpsertion("frank", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 8192),
                                          b"frank-secret", b"some-salt")
    for future in admin.alter_user_scram_credentials([upsert]).values():
        assert future.result(10) is None
    info = admin.describe_user_scram_credentials(["frank"])["frank"].result(10)
    assert [(c.mechanism, c.iterations) for c in info.scram_credential_infos] == [(ScramMechanism.SCRAM_SHA_256, 8192)]
    # The credential librdkafka salted works for a SCRAM login.
    frank = secure.conf("SASL_PLAINTEXT", user="frank", password="frank-secret", mechanism="SCRAM-SHA-256")
    assert "kafka-cluster" not in str(AdminClient(frank).list_topics(timeout=10).topics)
    for future in admin.alter_user_scram_credentials(
            [UserScramCredentialDeletion("frank", ScramMechanism.SCRAM_SHA_256)]).values():
        assert future.result(10) is None
    with pytest.raises(KafkaException) as raised:
        admin.describe_user_scram_credentials(["frank"])["frank"].result(10)
    assert "RESOURCE_NOT_FOUND" in str(raised.value) or "not exist" in str(raised.value)


def test_librdkafka_reauthenticates_before_the_session_ends(tmp_path, names):
    """connections.max.reauth.ms (KIP-368): librdkafka re-authenticates on the connection
    before the session lifetime the broker announced, so the connection is never dropped."""
    data = tmp_path / "data"
    sluice("user", "add", ADMIN, "--data-dir", str(data), input=ADMIN_PW + "\n")
    port = free_port()
    broker = SluiceBroker(
        data, {"connections.max.reauth.ms": "1500", "super.users": f"User:{ADMIN}"},
        extra_args=["--listen", f"SASL_PLAINTEXT://127.0.0.1:{port}", "--log-level", "debug"]).start()
    try:
        wait_for_listener(broker, port)  # the fixture waits for the first listener only
        errors = []
        conf = {"bootstrap.servers": f"127.0.0.1:{port}", "security.protocol": "SASL_PLAINTEXT",
                "sasl.mechanism": "SCRAM-SHA-256", "sasl.username": ADMIN, "sasl.password": ADMIN_PW,
                "linger.ms": 0, "error_cb": errors.append}
        producer = Producer(conf)
        topic = names()
        delivered = []
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            producer.produce(topic, b"x", callback=lambda err, msg: delivered.append(err))
            producer.poll(0.2)
        producer.flush(10)
        assert delivered and all(err is None for err in delivered)
        assert errors == []
        log = broker.log_path.read_text(errors="replace")
        assert "SASL session expired" not in log
    finally:
        assert broker.stop() == 0


def test_unknown_user_and_untrusted_or_expired_certificates_are_refused(secure, names):
    unknown = AdminClient({**secure.conf("SASL_SSL", user="nobody", password="x"), "client.id": "unknown-user"})
    with pytest.raises(KafkaException):
        unknown.list_topics(timeout=5)
    base = {"bootstrap.servers": f"127.0.0.1:{secure.ports['SSL']}", "security.protocol": "SSL",
            "ssl.ca.location": str(secure.certs / "ca.pem")}
    for name in ["mallory", "expired"]:
        conf = {**base, "ssl.certificate.location": str(secure.certs / f"{name}.pem"),
                "ssl.key.location": str(secure.certs / f"{name}.key")}
        with pytest.raises(KafkaException):
            AdminClient(conf).list_topics(timeout=5)
    # A client that trusts another CA refuses the broker.
    with pytest.raises(KafkaException):
        AdminClient({**secure.conf("SASL_SSL"), "ssl.ca.location": str(secure.certs / "other-ca.pem")}).list_topics(
            timeout=5)
    # A PLAINTEXT client on a TLS port gets nowhere, and the broker serves on.
    with pytest.raises(KafkaException):
        AdminClient({"bootstrap.servers": f"127.0.0.1:{secure.ports['SASL_SSL']}"}).list_topics(timeout=5)
    assert produce(secure.conf("SASL_SSL"), names(), b"still serving") is None


def test_prefixed_acl_allows_a_family_of_topics(secure, names):
    cli = secure.cli()
    prefix = names("fam") + "-"
    sluice("user", "add", "gina", *cli, input="gina-secret\n")
    sluice("acl", "add", "--principal", "User:gina", "--operation", "WRITE", "--topic", prefix, "--prefixed", *cli)
    for suffix in ["a", "b"]:
        sluice("topic", "create", prefix + suffix, *cli)
    sluice("topic", "create", names("outside"), *cli)
    gina = secure.conf("SASL_SSL", user="gina", password="gina-secret")
    assert produce(gina, prefix + "a") is None and produce(gina, prefix + "b") is None
    assert produce(gina, names("outside"), timeout=5).name() == "TOPIC_AUTHORIZATION_FAILED"


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-512", "PLAIN"])
def test_kafka_python_over_sasl_ssl_produce_group_consume_admin(secure, names, mechanism):
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer

    topic, group = names(), names("g")
    common = dict(bootstrap_servers=f"127.0.0.1:{secure.ports['SASL_SSL']}", security_protocol="SASL_SSL",
                  ssl_cafile=str(secure.certs / "ca.pem"), sasl_mechanism=mechanism,
                  sasl_plain_username=ADMIN, sasl_plain_password=ADMIN_PW)
    admin = KafkaAdminClient(**common)
    from kafka.admin import NewTopic as KPNewTopic
    admin.create_topics([KPNewTopic(topic, 1, 1)])
    assert topic in admin.list_topics()
    admin.close()
    producer = KafkaProducer(**common)
    producer.send(topic, b"kp").get(timeout=20)
    producer.close()
    consumer = KafkaConsumer(topic, group_id=group, auto_offset_reset="earliest", consumer_timeout_ms=20000,
                             **common)
    assert [m.value for m in consumer][:1] == [b"kp"]
    consumer.commit()
    consumer.close()


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-512", "PLAIN"])
def test_aiokafka_over_sasl_ssl_produce_and_group_consume(secure, names, mechanism):
    import asyncio

    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.helpers import create_ssl_context

    topic, group = names(), names("g")
    common = dict(bootstrap_servers=f"127.0.0.1:{secure.ports['SASL_SSL']}", security_protocol="SASL_SSL",
                  ssl_context=create_ssl_context(cafile=str(secure.certs / "ca.pem")), sasl_mechanism=mechanism,
                  sasl_plain_username=ADMIN, sasl_plain_password=ADMIN_PW)

    async def run():
        producer = AIOKafkaProducer(**common)
        await producer.start()
        try:
            await producer.send_and_wait(topic, b"aio")
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(topic, group_id=group, auto_offset_reset="earliest", **common)
        await consumer.start()
        try:
            return (await asyncio.wait_for(consumer.getone(), 20)).value
        finally:
            await consumer.stop()

    assert asyncio.run(run()) == b"aio"


def test_kcat_and_the_sluice_cli_over_sasl_ssl_and_client_certificates(secure, names):
    topic, group = names(), names("g")
    properties = str(secure.certs / f"{ADMIN}.properties")
    secure.cli()  # writes the properties file
    produced = subprocess.run(["kcat", "-F", properties, "-P", "-t", topic], input=b"k1\nk2\n",
                              capture_output=True, timeout=30)
    assert produced.returncode == 0, produced.stderr
    consumed = subprocess.run(
        ["kcat", "-F", properties, "-G", group, "-X", "auto.offset.reset=earliest", "-e", "-q", topic],
        capture_output=True, timeout=60)
    assert consumed.returncode == 0, consumed.stderr
    assert consumed.stdout.split() == [b"k1", b"k2"]

    # The Swift client (the sluice CLI) with a client certificate on the SSL listener.
    sluice("acl", "add", "--principal", "User:CN=carol,OU=eng,O=Acme", "--operation", "WRITE", "--operation", "READ",
           "--topic", topic, *secure.cli())
    carol_group = names("carol")
    sluice("acl", "add", "--principal", "User:CN=carol,OU=eng,O=Acme", "--operation", "READ", "--group",
           carol_group, *secure.cli())
    tls = ["--bootstrap", f"127.0.0.1:{secure.ports['SSL']}", "-X", "security.protocol=SSL",
           "-X", f"ssl.ca.location={secure.certs / 'ca.pem'}",
           "-X", f"ssl.certificate.location={secure.certs / 'carol.pem'}",
           "-X", f"ssl.key.location={secure.certs / 'carol.key'}"]
    sluice("produce", topic, *tls, input="k3\n")
    out = sluice("consume", topic, "--group", carol_group, "--from", "beginning", "--count", "3", *tls).stdout
    assert out.split() == ["k1", "k2", "k3"]
    # kcat with the same client certificate.
    kcat_tls = subprocess.run(
        ["kcat", "-b", f"127.0.0.1:{secure.ports['SSL']}", "-X", "security.protocol=SSL",
         "-X", f"ssl.ca.location={secure.certs / 'ca.pem'}",
         "-X", f"ssl.certificate.location={secure.certs / 'carol.pem'}",
         "-X", f"ssl.key.location={secure.certs / 'carol.key'}", "-C", "-t", topic, "-o", "beginning", "-e", "-q"],
        capture_output=True, timeout=30)
    assert kcat_tls.returncode == 0, kcat_tls.stderr
    assert kcat_tls.stdout.split() == [b"k1", b"k2", b"k3"]


def test_console_uses_the_same_users_and_acls(secure, names):
    """The web console signs in with HTTP Basic like the API, and each user sees and changes
    only what the ACLs allow."""
    import re

    import requests

    base = f"https://127.0.0.1:{secure.ports['HTTPS']}/ui"
    ca = str(secure.certs / "ca.pem")
    mine, other = names(), names()
    cli = secure.cli()
    sluice("topic", "create", mine, *cli)
    sluice("topic", "create", other, *cli)
    sluice("user", "add", "dana", *cli, input="dana-secret\n")
    sluice("acl", "add", "--principal", "User:dana", "--operation", "DESCRIBE", "--topic", mine, *cli)

    anonymous = requests.get(base + "/topics", verify=ca, timeout=10)
    assert anonymous.status_code == 401 and "Basic" in anonymous.headers["WWW-Authenticate"]
    assert requests.get(base + "/topics", auth=("dana", "wrong"), verify=ca, timeout=10).status_code == 401
    listed = requests.get(base + "/topics", auth=("dana", "dana-secret"), verify=ca, timeout=10)
    assert listed.status_code == 200
    assert f'data-topic="{mine}"' in listed.text and f'data-topic="{other}"' not in listed.text
    assert "Create a topic" not in listed.text  # no CREATE on the cluster
    # Describe but not read: no records; another topic: not found; the overview: cluster DESCRIBE.
    assert requests.get(f"{base}/topics/{mine}/records", auth=("dana", "dana-secret"), verify=ca,
                        timeout=10).status_code == 403
    assert requests.get(f"{base}/topics/{other}", auth=("dana", "dana-secret"), verify=ca,
                        timeout=10).status_code == 404
    assert requests.get(base, auth=("dana", "dana-secret"), verify=ca, timeout=10).status_code == 403
    # Deleting needs DELETE on the topic, even with the form's token.
    token = re.search(r'name="csrf" value="([^"]+)"',
                      requests.get(base + "/topics", auth=(ADMIN, ADMIN_PW), verify=ca, timeout=10).text).group(1)
    refused = requests.post(f"{base}/topics/{mine}/delete", data={"confirm": mine, "csrf": token},
                            auth=("dana", "dana-secret"), verify=ca, timeout=10, allow_redirects=False)
    assert refused.status_code == 403
    # The admin (a super user) sees everything and may delete.
    everything = requests.get(base + "/topics", auth=(ADMIN, ADMIN_PW), verify=ca, timeout=10).text
    assert f'data-topic="{mine}"' in everything and f'data-topic="{other}"' in everything
    deleted = requests.post(f"{base}/topics/{other}/delete", data={"confirm": other, "csrf": token},
                            auth=(ADMIN, ADMIN_PW), verify=ca, timeout=10, allow_redirects=False)
    assert deleted.status_code == 303
    sluice("user", "delete", "dana", *cli)
