"""The harness itself: real servers, real clients, deadlines instead of sleeps."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import asyncpg
import httpx
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from tests.harness import (
    DEFAULT_QUEUE_LIMITS,
    InfluxDB1Server,
    MosquittoServer,
    PostgresServer,
    VictoriaMetricsServer,
)
from tests.harness.base import MissingBinaryError, find_program

DEADLINE = 60.0  # seconds; every wait below is bounded by it
SYSTEM_PORTS = {1883, 5432, 8086, 8088}


def _wait(event: threading.Event, what: str, timeout: float = DEADLINE) -> None:
    assert event.wait(timeout), f"timed out after {timeout}s waiting for {what}"


def _connect_props(session_expiry: int, receive_maximum: int | None = None) -> Properties:
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = session_expiry
    if receive_maximum is not None:
        props.ReceiveMaximum = receive_maximum
    return props


@dataclass
class SlowSubscriber:
    """MQTT v5 subscriber with a persistent session that acknowledges only when told.

    While ``stalled`` it holds every QoS 1 message unacknowledged, so the broker
    can have at most ``receive_maximum`` in flight and must queue the rest.
    """

    broker: MosquittoServer
    topic: str
    receive_maximum: int = 10
    client_id: str = field(default_factory=lambda: f"slow-{uuid.uuid4().hex[:8]}")
    payloads: list[bytes] = field(default_factory=list)
    stalled: bool = True
    session_present: bool | None = None
    sentinel: bytes = b"sentinel"

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        self.held: list[tuple[int, int]] = []
        self.subscribed = threading.Event()
        self.connected = threading.Event()
        self.disconnected = threading.Event()
        self.sentinel_seen = threading.Event()
        self.count_reached = threading.Event()
        self.target = -1
        self.client = self._new_client()

    def _new_client(self) -> mqtt.Client:
        # one paho Client per connection: a second loop_start() on the same
        # Client leaks its wake-up socketpair (a ResourceWarning, so an error here)
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=mqtt.MQTTv5
        )
        client.manual_ack_set(True)
        client.on_connect = self._on_connect
        client.on_subscribe = lambda *args: self.subscribed.set()
        client.on_message = self._on_message
        client.on_disconnect = lambda *args: self.disconnected.set()
        return client

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:  # type: ignore[no-untyped-def]
        self.session_present = bool(flags.session_present)
        self.connected.set()

    def _on_message(self, client, userdata, msg) -> None:  # type: ignore[no-untyped-def]
        with self.lock:
            if msg.payload == self.sentinel:
                client.ack(msg.mid, msg.qos)
                self.sentinel_seen.set()
                return
            self.payloads.append(msg.payload)
            if self.stalled:
                self.held.append((msg.mid, msg.qos))
            else:
                client.ack(msg.mid, msg.qos)
            if len(self.payloads) == self.target:
                self.count_reached.set()

    def connect(self, subscribe: bool = True) -> None:
        self.connected.clear()
        if self.disconnected.is_set():
            self.client = self._new_client()
        self.client.connect(
            self.broker.host,
            self.broker.port,
            keepalive=60,
            clean_start=False,
            properties=_connect_props(3600, self.receive_maximum),
        )
        self.client.loop_start()
        _wait(self.connected, "CONNACK")
        if subscribe:
            self.subscribed.clear()
            self.client.subscribe(self.topic, qos=1)
            _wait(self.subscribed, "SUBACK")

    def release(self) -> None:
        """Stop stalling: acknowledge what is held and everything that follows."""
        with self.lock:
            self.stalled = False
            held, self.held = self.held, []
        for mid, qos in held:
            self.client.ack(mid, qos)

    def wait_for_count(self, count: int) -> None:
        with self.lock:
            self.target = count
            if len(self.payloads) >= count:
                return
        _wait(self.count_reached, f"{count} messages (have {len(self.payloads)})")

    def disconnect(self) -> None:
        self.disconnected.clear()
        self.client.disconnect()
        _wait(self.disconnected, "disconnect")
        self.client.loop_stop()


def _publish(broker: MosquittoServer, topic: str, payloads: list[bytes]) -> None:
    """Publish at QoS 1 and return once the broker acknowledged every message."""
    acked = 0
    done = threading.Event()
    lock = threading.Lock()

    def on_publish(client, userdata, mid, reason_code, properties) -> None:  # type: ignore[no-untyped-def]
        nonlocal acked
        with lock:
            acked += 1
            if acked == len(payloads):
                done.set()

    connected = threading.Event()
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:8]}", protocol=mqtt.MQTTv5
    )
    client.on_publish = on_publish
    client.on_connect = lambda *args: connected.set()
    client.connect(broker.host, broker.port, keepalive=60)
    client.loop_start()
    try:
        _wait(connected, "publisher CONNACK")
        for payload in payloads:
            info = client.publish(topic, payload, qos=1)
            assert info.rc == mqtt.MQTT_ERR_SUCCESS
        _wait(done, f"PUBACK for {len(payloads)} messages (have {acked})")
    finally:
        client.disconnect()
        client.loop_stop()


def _flood_slow_subscriber(broker: MosquittoServer, total: int) -> SlowSubscriber:
    """Publish ``total`` messages while the subscriber is stalled, then let it drain.

    The sentinel goes out only after the subscriber got a message beyond its
    first in-flight window, i.e. after the broker's queue has started to shrink,
    so it is never the one dropped; as the last message in the queue it marks
    the end of what the broker kept.
    """
    topic = f"harness/{uuid.uuid4().hex[:8]}/readings"
    sub = SlowSubscriber(broker, topic)
    sub.connect()
    try:
        _publish(broker, topic, [str(i).encode() for i in range(total)])
        with sub.lock:
            in_window = len(sub.payloads)
        assert in_window <= sub.receive_maximum, "the subscriber was not held back"
        sub.release()
        sub.wait_for_count(in_window + 1)
        _publish(broker, topic, [sub.sentinel])
        _wait(sub.sentinel_seen, "the sentinel after the queued messages")
    finally:
        sub.disconnect()
    return sub


@pytest.mark.mosquitto
@pytest.mark.slow
def test_slow_qos1_subscriber_gets_every_message(mosquitto: MosquittoServer) -> None:
    total = 5000
    sub = _flood_slow_subscriber(mosquitto, total)
    assert {int(p) for p in sub.payloads} == set(range(total))
    assert "are being dropped" not in mosquitto.log_text()


@pytest.mark.mosquitto
@pytest.mark.slow
def test_default_queue_limits_do_drop_messages(
    make_mosquitto: Callable[..., MosquittoServer],
) -> None:
    """Control: with Mosquitto's own defaults the same flood loses messages."""
    broker = make_mosquitto(queue_limits=DEFAULT_QUEUE_LIMITS)
    total = 5000
    sub = _flood_slow_subscriber(broker, total)
    received = {int(p) for p in sub.payloads}
    assert len(received) < total, "Mosquitto's default limits kept every message"
    # 10 in flight + 1000 queued (the default), everything after that is dropped
    assert len(received) <= sub.receive_maximum + 1000
    assert "Outgoing messages are being dropped" in broker.log_text()


@pytest.mark.mosquitto
def test_restart_keeps_persistent_session_queue(mosquitto: MosquittoServer) -> None:
    topic = f"harness/{uuid.uuid4().hex[:8]}/readings"
    first_port = mosquitto.port
    sub = SlowSubscriber(mosquitto, topic)
    sub.stalled = False
    sub.connect()
    sub.disconnect()  # the session (expiry 1 h) and its subscription stay

    _publish(mosquitto, topic, [str(i).encode() for i in range(300)])
    mosquitto.stop()
    assert not mosquitto.running
    mosquitto.start()
    assert mosquitto.port == first_port

    sub.connect(subscribe=False)
    try:
        assert sub.session_present is True
        sub.wait_for_count(300)
    finally:
        sub.disconnect()
    assert sorted(int(p) for p in sub.payloads) == list(range(300))


@pytest.mark.mosquitto
def test_mosquitto_kill_and_start_again(mosquitto: MosquittoServer) -> None:
    pid = mosquitto.pid
    mosquitto.kill()
    assert not mosquitto.running
    mosquitto.start()
    assert mosquitto.running and mosquitto.pid != pid
    assert mosquitto.url == f"mqtt://127.0.0.1:{mosquitto.port}"
    assert mosquitto.port not in SYSTEM_PORTS


@pytest.mark.influxdb
def test_influx_write_query_and_overwrite(influxdb: InfluxDB1Server, influx_db: str) -> None:
    assert influx_db.startswith(f"influxdb://127.0.0.1:{influxdb.http_port}/t_")
    assert influxdb.http_port not in SYSTEM_PORTS and influxdb.rpc_port not in SYSTEM_PORTS
    db = influx_db.rsplit("/", 1)[1]
    ts = 1_700_000_000_000_000_000
    influxdb.write(f"glucose,device=SN1,kind=cgm mg_dl=100 {ts}", database=db)
    influxdb.write(f"glucose,device=SN1,kind=cgm mg_dl=100 {ts + 300_000_000_000}", database=db)
    points = influxdb.points("SELECT * FROM glucose ORDER BY time", database=db)
    assert [(p["time"], p["mg_dl"], p["device"]) for p in points] == [
        (ts, 100, "SN1"),
        (ts + 300_000_000_000, 100, "SN1"),
    ]
    # same measurement + tag set + timestamp: the point is replaced, not doubled
    influxdb.write(f"glucose,device=SN1,kind=cgm mg_dl=110 {ts}", database=db)
    points = influxdb.points(f"SELECT * FROM glucose WHERE time = {ts}", database=db)
    assert len(points) == 1 and points[0]["mg_dl"] == 110
    count = influxdb.points("SELECT count(mg_dl) FROM glucose", database=db)
    assert count[0]["count"] == 2


@pytest.mark.influxdb
def test_influx_stop_start_keeps_data(make_influxdb: Callable[..., InfluxDB1Server]) -> None:
    server = make_influxdb(database="keep")
    server.write("m v=1 1000", database="keep")
    server.stop()
    server.start()
    assert server.points("SELECT v FROM m", database="keep") == [
        {"time": 1000, "v": 1, "_measurement": "m"}
    ]
    server.kill()
    server.start()
    assert len(server.points("SELECT v FROM m", database="keep")) == 1


@pytest.mark.postgres
async def test_postgres_with_asyncpg(postgres: PostgresServer, pg_url: str) -> None:
    assert pg_url.startswith(f"postgresql://{postgres.user}@127.0.0.1:{postgres.port}/t_")
    assert postgres.port not in SYSTEM_PORTS
    conn = await asyncpg.connect(pg_url, timeout=DEADLINE)
    try:
        await conn.execute("CREATE TABLE reading (key text PRIMARY KEY, mg_dl double precision)")
        await conn.executemany(
            "INSERT INTO reading VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET mg_dl = $2",
            [("a", 100.0), ("b", 180.1559), ("a", 101.0)],
        )
        rows = await conn.fetch("SELECT key, mg_dl FROM reading ORDER BY key")
        assert [tuple(r) for r in rows] == [("a", 101.0), ("b", 180.1559)]
        assert await conn.fetchval("SELECT inet_server_addr()::text") == "127.0.0.1/32"
    finally:
        await conn.close()


@pytest.mark.postgres
def test_postgres_kill_and_restart_keeps_data(
    make_postgres: Callable[..., PostgresServer],
) -> None:
    server = make_postgres()
    db = server.new_database()
    server.execute("CREATE TABLE t (v int); INSERT INTO t VALUES (7)", database=db)
    server.kill()
    assert not server.running
    server.start()
    assert server.execute("SELECT v FROM t", database=db) == [("7",)]
    server.stop()
    server.start()
    assert server.execute("SELECT v FROM t", database=db) == [("7",)]


def test_missing_program_names_the_debian_package() -> None:
    with pytest.raises(MissingBinaryError, match="sudo apt-get install some-package"):
        find_program("no-such-program-diatabase", "some-package")


def test_victoria_metrics_optional(victoria_metrics: VictoriaMetricsServer) -> None:
    """Skips where the Debian package victoria-metrics is not installed."""
    response = httpx.post(f"{victoria_metrics.url}/write", content=b"glucose,device=SN1 mg_dl=100")
    assert response.status_code == 204
    series = victoria_metrics.wait_for_series("glucose_mg_dl")
    assert series[0]["metric"]["device"] == "SN1"
