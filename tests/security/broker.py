"""The shipped Mosquitto configuration, run for real, and MQTT clients that speak TLS.

``ShippedMosquitto`` starts Mosquitto with deploy/mosquitto/mosquitto.conf and
deploy/mosquitto/acl as they are in the repository. Only the lines a test machine must
change are substituted (the listener port, the certificate, ACL and data paths), each
exactly once: a change to one of those lines in the shipped file fails every test here
instead of being silently bypassed.
"""

from __future__ import annotations

import os
import socket
import ssl
import struct
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from gateway import pki
from tests.harness import MosquittoServer

ROOT = Path(__file__).resolve().parents[2]
SHIPPED_CONF = ROOT / "deploy" / "mosquitto" / "mosquitto.conf"
SHIPPED_ACL = ROOT / "deploy" / "mosquitto" / "acl"
BROKER_NAME = "mosquitto"  # the server certificate's CN, as in deploy/compose.yaml
HOST = "127.0.0.1"


@dataclass(frozen=True)
class Pki:
    """A CA with certificates issued by gateway.pki, in a temporary directory."""

    dir: Path

    @property
    def ca(self) -> Path:
        return pki.ca_cert_path(self.dir)

    @property
    def crl(self) -> Path:
        return pki.crl_path(self.dir)

    def identity(self, kind: pki.Kind, name: str) -> tuple[Path, Path]:
        cert, key = pki.cert_path(self.dir, kind, name), pki.key_path(self.dir, kind, name)
        if not cert.exists():
            pki.issue(self.dir, kind, name)
        return cert, key

    def hub(self, hub_id: str) -> tuple[Path, Path]:
        return self.identity("hub", hub_id)

    def service(self, name: str) -> tuple[Path, Path]:
        return self.identity("service", name)


def make_pki(directory: Path) -> Pki:
    pki.init_ca(directory)
    pki.issue(directory, "server", BROKER_NAME, dns=["localhost"], ips=[HOST])
    pki.issue(directory, "service", "svc-health")
    return Pki(directory)


def render_config(
    text: str, *, port: int, certs: Pki, acl: Path, data_dir: Path, as_root: bool
) -> str:
    """The shipped config with its deployment paths and port replaced, each exactly once."""
    replace = {
        "listener 8883": f"listener {port} {HOST}",
        "acl_file /mosquitto/config/acl": f"acl_file {acl}",
        "cafile /mosquitto/certs/ca.crt": f"cafile {certs.ca}",
        "certfile /mosquitto/certs/server.crt": (
            f"certfile {pki.cert_path(certs.dir, 'server', BROKER_NAME)}"
        ),
        "keyfile /mosquitto/certs/server.key": (
            f"keyfile {pki.key_path(certs.dir, 'server', BROKER_NAME)}"
        ),
        "crlfile /mosquitto/certs/crl.pem": f"crlfile {certs.crl}",
        "persistence_location /mosquitto/data/": f"persistence_location {data_dir}/",
    }
    seen: dict[str, int] = dict.fromkeys(replace, 0)
    out = []
    for line in text.splitlines():
        key = line.strip()
        if key in replace:
            seen[key] += 1
            out.append(replace[key])
        else:
            out.append(line)
    wrong = {k: n for k, n in seen.items() if n != 1}
    assert not wrong, f"shipped mosquitto.conf changed: expected each once, got {wrong}"
    # As root, Mosquitto would switch to the "mosquitto" user, which cannot read the
    # test's 0600 keys; in the container it runs as that user from the start.
    head = ["user root"] if as_root else []
    return "\n".join([*head, *out]) + "\n"


class ShippedMosquitto(MosquittoServer):
    """Mosquitto with the shipped config; ready once svc-health completes a TLS CONNECT."""

    def __init__(self, certs: Pki, *, config_text: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.certs = certs
        self.config_text = config_text

    @property
    def url(self) -> str:
        return f"mqtts://{HOST}:{self.port}"

    def _prepare(self) -> None:
        self.persistence_dir.mkdir(exist_ok=True)
        text = self.config_text or SHIPPED_CONF.read_text(encoding="utf-8")
        self.config_path.write_text(
            render_config(
                text,
                port=self.port,
                certs=self.certs,
                acl=SHIPPED_ACL,
                data_dir=self.persistence_dir,
                as_root=os.geteuid() == 0,
            ),
            encoding="utf-8",
        )

    def _ready(self) -> bool:
        ctx = tls_context(self.certs, *self.certs.service("svc-health"))
        return raw_connect(HOST, self.port, ctx, timeout=1.0) == "accepted"


# -- TLS contexts --------------------------------------------------------------------------


def tls_context(
    certs: Pki, cert: Path | None = None, key: Path | None = None, *, ca: Path | None = None
) -> ssl.SSLContext:
    """What our clients do: verify the broker against our CA, present a certificate."""
    ctx = ssl.create_default_context(cafile=str(ca or certs.ca))
    if cert is not None:
        ctx.load_cert_chain(str(cert), str(key))
    return ctx


# -- a raw MQTT 3.1.1 client: every byte under the test's control --------------------------


def _remaining_length(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _string(s: str) -> bytes:
    b = s.encode()
    return struct.pack("!H", len(b)) + b


def connect_packet(client_id: str) -> bytes:
    body = _string("MQTT") + b"\x04\x02\x00\x1e" + _string(client_id)  # 3.1.1, clean
    return b"\x10" + _remaining_length(len(body)) + body


def publish_packet(topic: str, payload: bytes, packet_id: int) -> bytes:
    body = _string(topic) + struct.pack("!H", packet_id) + payload  # QoS 1
    return b"\x32" + _remaining_length(len(body)) + body


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed by the broker")
        data += chunk
    return data


class RawSession:
    """One TLS (or plain) connection speaking MQTT 3.1.1 by hand."""

    def __init__(self, port: int, ctx: ssl.SSLContext | None, timeout: float = 5.0) -> None:
        raw = socket.create_connection((HOST, port), timeout=timeout)
        try:
            self.sock: socket.socket = (
                ctx.wrap_socket(raw, server_hostname=HOST) if ctx is not None else raw
            )
        except BaseException:
            raw.close()
            raise
        self.sock.settimeout(timeout)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def connect(self, client_id: str) -> int:
        """CONNECT; the CONNACK return code (raises ConnectionError when closed instead)."""
        self.sock.sendall(connect_packet(client_id))
        answer = _recv_exact(self.sock, 4)
        if answer[0] != 0x20:
            raise ConnectionError(f"expected CONNACK, got {answer!r}")
        return answer[3]

    def publish(self, topic: str, payload: bytes, packet_id: int = 1) -> None:
        """QoS 1 PUBLISH, then wait for its PUBACK (ConnectionError when closed instead)."""
        self.sock.sendall(publish_packet(topic, payload, packet_id))
        answer = _recv_exact(self.sock, 4)
        if answer != b"\x40\x02" + struct.pack("!H", packet_id):
            raise ConnectionError(f"expected PUBACK {packet_id}, got {answer!r}")


def raw_connect(host: str, port: int, ctx: ssl.SSLContext | None, timeout: float = 5.0) -> str:
    """ "accepted", "refused" (CONNACK != 0) or "closed" (TLS or TCP ended, no CONNACK)."""
    client_id = f"probe-{uuid.uuid4().hex[:8]}"
    try:
        with RawSession(port, ctx, timeout) as session:
            rc = session.connect(client_id)
            if rc == 0:
                session.sock.sendall(b"\xe0\x00")
            return "accepted" if rc == 0 else "refused"
    except (ssl.SSLError, ConnectionError, OSError):
        return "closed"


# -- a paho MQTT v5 client for the ACL and queue tests -------------------------------------


@dataclass
class V5Client:
    """paho over TLS with MQTT v5; blocking helpers that wait with deadlines."""

    port: int
    ctx: ssl.SSLContext
    client_id: str
    clean_start: bool = True
    session_expiry_s: int = 0
    receive_maximum: int | None = None
    manual_ack: bool = False
    messages: list[paho.MQTTMessage] = field(default_factory=list)
    pubacks: dict[int, int] = field(default_factory=dict)
    subacks: dict[int, list[int]] = field(default_factory=dict)
    _cond: threading.Condition = field(default_factory=threading.Condition)
    _connack: int | None = None
    _disconnected: bool = False

    def __post_init__(self) -> None:
        self.client = paho.Client(
            paho.CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=paho.MQTTv5,
            manual_ack=self.manual_ack,
        )
        self.client.tls_set_context(self.ctx)
        self.client.max_inflight_messages_set(500)
        self.client.max_queued_messages_set(0)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_publish = self._on_publish
        self.client.on_subscribe = self._on_subscribe

    # callbacks run on paho's thread
    def _notify(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def _on_connect(self, _c: Any, _u: Any, _f: Any, rc: ReasonCode, _p: Any) -> None:
        self._connack = rc.value
        self._notify()

    def _on_disconnect(self, _c: Any, _u: Any, _f: Any, _rc: Any, _p: Any) -> None:
        self._disconnected = True
        self._notify()

    def _on_message(self, _c: Any, _u: Any, msg: paho.MQTTMessage) -> None:
        with self._cond:
            self.messages.append(msg)
            self._cond.notify_all()

    def _on_publish(self, _c: Any, _u: Any, mid: int, rc: ReasonCode, _p: Any) -> None:
        with self._cond:
            self.pubacks[mid] = rc.value
            self._cond.notify_all()

    def _on_subscribe(self, _c: Any, _u: Any, mid: int, rcs: list[ReasonCode], _p: Any) -> None:
        with self._cond:
            self.subacks[mid] = [rc.value for rc in rcs]
            self._cond.notify_all()

    def wait_for(self, cond: Any, timeout: float = 20.0, what: str = "condition") -> None:
        """Wait for ``cond``; a lost connection ends the wait at once (unless awaited)."""
        with self._cond:
            self._cond.wait_for(lambda: cond() or self._disconnected, timeout)
            if not cond():
                state = "disconnected" if self._disconnected else f"not within {timeout} s"
                raise AssertionError(f"{self.client_id}: {what}: {state}")

    # blocking API
    def connect(self) -> int:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.session_expiry_s
        if self.receive_maximum is not None:
            props.ReceiveMaximum = self.receive_maximum
        self._connack, self._disconnected = None, False
        self.client.connect(
            HOST, self.port, keepalive=30, clean_start=self.clean_start, properties=props
        )
        self.client.loop_start()
        self.wait_for(lambda: self._connack is not None or self._disconnected, what="CONNACK")
        return -1 if self._connack is None else self._connack

    def subscribe(self, topic: str) -> list[int]:
        _rc, mid = self.client.subscribe(topic, qos=1)
        self.wait_for(lambda: mid in self.subacks, what=f"SUBACK for {topic}")
        return self.subacks[mid]

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> int:
        """QoS 1; returns the PUBACK reason code (0 success, 0x87 not authorised)."""
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        self.wait_for(lambda: info.mid in self.pubacks, what=f"PUBACK on {topic}")
        return self.pubacks[info.mid]

    def publish_many(self, topic: str, payloads: list[bytes], window: int = 400) -> list[int]:
        """QoS 1 with a bounded window; every PUBACK reason code, in order."""
        mids: list[int] = []
        for payload in payloads:
            self.wait_for(
                lambda: sum(1 for m in mids[-window:] if m not in self.pubacks) < window,
                what="publish window",
            )
            info = self.client.publish(topic, payload, qos=1)
            assert info.rc == paho.MQTT_ERR_SUCCESS, info.rc
            mids.append(info.mid)
            # packet ids wrap at 65,535: consume each answer once it is read
        self.wait_for(lambda: all(m in self.pubacks for m in mids), 60, what="every PUBACK")
        return [self.pubacks[m] for m in mids]

    def payloads(self) -> list[bytes]:
        with self._cond:
            return [m.payload for m in self.messages]

    def close(self) -> None:
        if self._connack == 0 and not self._disconnected:
            self.client.disconnect()
            self.wait_for(lambda: self._disconnected, 10, what="disconnect")
        self.client.loop_stop()
        sock = self.client.socket()
        if sock is not None:
            sock.close()
