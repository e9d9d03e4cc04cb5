"""The shipped ACL: a hub writes only its own topics and reads nothing; services by name."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gateway.contract.v1 import topic_events, topic_readings, topic_status
from tests.security.broker import Pki, ShippedMosquitto, V5Client, tls_context

pytestmark = pytest.mark.mosquitto

NOT_AUTHORIZED = 0x87
FAILURE = 0x80  # PUBACK reason codes below 0x80 mean accepted (0x10: no subscribers)
QUARANTINE = "diatabase/v1/quarantine"


@pytest.fixture
def clients(broker: ShippedMosquitto, certs: Pki) -> Iterator[object]:
    made: list[V5Client] = []

    def make(kind: str, name: str, client_id: str | None = None, **kw: object) -> V5Client:
        ctx = tls_context(certs, *certs.identity(kind, name))  # type: ignore[arg-type]
        c = V5Client(broker.port, ctx, client_id or f"{name}-test", **kw)  # type: ignore[arg-type]
        made.append(c)
        assert c.connect() == 0, f"{name} could not connect"
        return c

    yield make
    for c in made:
        c.close()


def test_hub_cannot_forge_another_hubs_readings(clients) -> None:  # type: ignore[no-untyped-def]
    ingest = clients("service", "svc-ingest")
    assert ingest.subscribe("$share/ingest/" + topic_readings("+")) == [1]
    hub = clients("hub", "hub-1")

    # Forged first, genuine second, on one connection: MQTT keeps their order, so once
    # the genuine message has arrived a forwarded forgery would have arrived before it.
    assert hub.publish(topic_readings("hub-2"), b"forged") == NOT_AUTHORIZED
    assert hub.publish(topic_readings("hub-1"), b"genuine") < FAILURE
    ingest.wait_for(lambda: len(ingest.messages) >= 1, what="the genuine batch")
    assert [(m.topic, m.payload) for m in ingest.messages] == [
        (topic_readings("hub-1"), b"genuine")
    ]


def test_hub_writes_exactly_its_three_topics(clients) -> None:  # type: ignore[no-untyped-def]
    hub = clients("hub", "hub-1")
    assert hub.publish(topic_readings("hub-1"), b"{}") < FAILURE
    assert hub.publish(topic_status("hub-1"), b"{}", retain=True) < FAILURE
    assert hub.publish(topic_events("hub-1"), b"{}") < FAILURE
    for topic in [
        "diatabase/v1/hubs/hub-1/other",
        topic_status("hub-2"),
        topic_events("hub-2"),
        QUARANTINE,
        "diatabase/v1/alerts/x",
        "diatabase/v2/hubs/hub-1/readings",
        "$SYS/broker/uptime",
        "anything",
    ]:
        assert hub.publish(topic, b"{}") == NOT_AUTHORIZED, topic


def test_hub_reads_nothing(clients) -> None:  # type: ignore[no-untyped-def]
    spy = clients("hub", "hub-1")
    for topic in ["#", topic_readings("+"), topic_status("hub-2"), "$share/g/#"]:
        spy.subscribe(topic)
    other = clients("hub", "hub-2")
    assert other.publish(topic_readings("hub-2"), b"private") < FAILURE
    assert other.publish(topic_status("hub-2"), b"status", retain=True) < FAILURE
    ingest = clients("service", "svc-ingest")
    assert ingest.publish(QUARANTINE, b"notice") < FAILURE
    # Barrier: the spy's own PUBACK travels after anything the broker forwarded to it
    # while handling the publishes above (one broker thread, one ordered connection).
    assert spy.publish(topic_events("hub-1"), b"barrier") < FAILURE
    assert spy.messages == []
    # a hub does not even get its own data back
    assert spy.publish(topic_readings("hub-1"), b"own") < FAILURE
    assert spy.publish(topic_events("hub-1"), b"barrier") < FAILURE
    assert spy.messages == []


def test_ingester_reads_every_hub_and_writes_notices(clients) -> None:  # type: ignore[no-untyped-def]
    ingest = clients("service", "svc-ingest")
    for topic in [topic_readings("+"), topic_status("+"), topic_events("+")]:
        assert ingest.subscribe(topic) == [1]
    for hub_id in ("hub-1", "hub-2"):
        hub = clients("hub", hub_id)
        assert hub.publish(topic_readings(hub_id), b"r") < FAILURE
        assert hub.publish(topic_status(hub_id), b"s", retain=True) < FAILURE
        assert hub.publish(topic_events(hub_id), b"e") < FAILURE
    ingest.wait_for(lambda: len(ingest.messages) == 6, what="six messages")
    assert {m.topic for m in ingest.messages} == {
        t(h) for h in ("hub-1", "hub-2") for t in (topic_readings, topic_status, topic_events)
    }
    assert ingest.publish(QUARANTINE, b"q") < FAILURE
    assert ingest.publish("diatabase/v1/alerts/low/hub-1", b"a") < FAILURE
    # ... and nothing a hub or anyone else would need to trust
    assert ingest.publish(topic_readings("hub-1"), b"forged") == NOT_AUTHORIZED
    assert ingest.publish("$SYS/broker/uptime", b"x") == NOT_AUTHORIZED


def test_health_identity_reads_only_uptime(clients) -> None:  # type: ignore[no-untyped-def]
    health = clients("service", "svc-health")
    health.subscribe("$SYS/broker/uptime")
    health.wait_for(lambda: len(health.messages) >= 1, what="$SYS/broker/uptime")
    health.subscribe(topic_readings("+"))
    hub = clients("hub", "hub-1")
    assert hub.publish(topic_readings("hub-1"), b"private") < FAILURE
    assert health.publish(topic_readings("hub-1"), b"x") == NOT_AUTHORIZED  # barrier too
    assert {m.topic for m in health.messages} == {"$SYS/broker/uptime"}


def test_unknown_service_gets_nothing(clients) -> None:  # type: ignore[no-untyped-def]
    """A valid certificate whose name the ACL does not list may connect, and do nothing."""
    stranger = clients("service", "svc-unknown")
    stranger.subscribe("#")
    hub = clients("hub", "hub-1")
    assert hub.publish(topic_readings("hub-1"), b"private") < FAILURE
    assert stranger.publish(QUARANTINE, b"x") == NOT_AUTHORIZED
    assert stranger.publish(topic_readings("svc-unknown"), b"x") < FAILURE  # its pattern topic
    assert stranger.messages == []


def test_session_takeover_by_client_id_leaks_nothing_but_loses_the_queue(  # type: ignore[no-untyped-def]
    clients,
) -> None:
    """KNOWN LIMITATION of Mosquitto 2.0 (docs/security.md, "Session takeover").

    Mosquitto resumes a persistent session by client id alone. A stolen hub certificate
    that connects with the ingester's client id takes the session over: read rights are
    checked for the new owner, so none of the queued readings reach the thief, but they
    are consumed and gone when the real ingester comes back. The control is keeping
    ingester client ids secret (deploy/compose.yaml); if this test starts failing on the
    loss assertion, the broker has started to bind sessions to identities.
    """
    ingest = clients("service", "svc-ingest", "ingest-1", clean_start=False, session_expiry_s=3600)
    assert ingest.subscribe("$share/ingest/" + topic_readings("+")) == [1]
    ingest.close()
    hub = clients("hub", "hub-2")
    for i in range(20):
        assert hub.publish(topic_readings("hub-2"), f"r{i}".encode()) < FAILURE

    thief = clients("hub", "hub-1", "ingest-1", clean_start=False, session_expiry_s=3600)
    assert thief.publish(topic_events("hub-1"), b"barrier") < FAILURE  # see test_hub_reads_nothing
    assert thief.messages == []  # confidentiality holds
    thief.close()

    back = clients("service", "svc-ingest", "ingest-1", clean_start=False, session_expiry_s=3600)
    assert hub.publish(topic_readings("hub-2"), b"after") < FAILURE
    back.wait_for(lambda: b"after" in back.payloads(), what="a reading published afterwards")
    assert back.payloads() == [b"after"]  # the 20 queued readings were lost to the thief


def test_web_identity_reads_status_writes_uploads_and_alerts(clients) -> None:  # type: ignore[no-untyped-def]
    web = clients("service", "svc-web")
    assert web.subscribe(topic_status("+")) == [1]
    web.subscribe(topic_readings("+"))  # granted or not, nothing may arrive
    hub = clients("hub", "hub-1")
    assert hub.publish(topic_readings("hub-1"), b"private") < FAILURE
    assert hub.publish(topic_status("hub-1"), b"s", retain=True) < FAILURE
    web.wait_for(lambda: len(web.messages) >= 1, what="hub status")
    assert web.publish(topic_readings("ns-uploads"), b"upload") < FAILURE
    assert web.publish("diatabase/v1/alerts/P-1", b"acked", retain=True) < FAILURE
    for forbidden in (topic_status("hub-1"), topic_events("hub-1"), QUARANTINE):
        assert web.publish(forbidden, b"x") == NOT_AUTHORIZED, forbidden
    assert hub.publish(topic_events("hub-1"), b"barrier") < FAILURE
    assert {m.topic for m in web.messages} == {topic_status("hub-1")}
