"""Who may talk to the shipped broker at all: TLS only, a certificate from our CA, not
revoked, made for a client."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gateway import pki
from tests.security.broker import (
    HOST,
    SHIPPED_CONF,
    Pki,
    RawSession,
    ShippedMosquitto,
    connect_packet,
    make_pki,
    raw_connect,
    tls_context,
)

pytestmark = pytest.mark.mosquitto


def test_hub_with_certificate_connects(broker: ShippedMosquitto, certs: Pki) -> None:
    assert raw_connect(HOST, broker.port, tls_context(certs, *certs.hub("hub-1"))) == "accepted"


def test_client_without_certificate_is_refused(broker: ShippedMosquitto, certs: Pki) -> None:
    assert raw_connect(HOST, broker.port, tls_context(certs)) == "closed"


def test_certificate_from_another_ca_is_refused(
    broker: ShippedMosquitto, certs: Pki, tmp_path: Path
) -> None:
    other = make_pki(tmp_path / "other")
    # same name, same kind, valid in every way except for who signed it
    ctx = tls_context(other, *other.hub("hub-1"), ca=certs.ca)
    assert raw_connect(HOST, broker.port, ctx) == "closed"


def test_server_certificate_cannot_log_in_as_a_client(broker: ShippedMosquitto, certs: Pki) -> None:
    """Extended key usage is enforced: the broker's own certificate is serverAuth only."""
    cert = pki.cert_path(certs.dir, "server", "mosquitto")
    key = pki.key_path(certs.dir, "server", "mosquitto")
    assert raw_connect(HOST, broker.port, tls_context(certs, cert, key)) == "closed"


def test_expired_certificate_is_refused(broker: ShippedMosquitto, certs: Pki) -> None:
    from datetime import UTC, datetime, timedelta

    pki.issue(certs.dir, "hub", "hub-old", days=1, now=datetime.now(UTC) - timedelta(days=3))
    ctx = tls_context(certs, *certs.hub("hub-old"))
    assert raw_connect(HOST, broker.port, ctx) == "closed"


def test_revoked_hub_is_refused_after_broker_restart(broker: ShippedMosquitto, certs: Pki) -> None:
    ctx_stolen = tls_context(certs, *certs.hub("hub-stolen"))
    ctx_other = tls_context(certs, *certs.hub("hub-2"))
    assert raw_connect(HOST, broker.port, ctx_stolen) == "accepted"

    pki.revoke(certs.dir, "hub", "hub-stolen")
    broker.stop()
    broker.start()  # crlfile is read when the listener starts

    assert raw_connect(HOST, broker.port, ctx_stolen) == "closed"
    assert raw_connect(HOST, broker.port, ctx_other) == "accepted"
    # the replacement certificate for the same hub works
    pki.issue(certs.dir, "hub", "hub-stolen", force=True)
    assert raw_connect(HOST, broker.port, tls_context(certs, *certs.hub("hub-stolen"))) == (
        "accepted"
    )


def test_plain_tcp_is_not_offered(broker: ShippedMosquitto) -> None:
    # A cleartext CONNECT on the only port gets no CONNACK: the broker wants a TLS hello.
    with RawSession(broker.port, None) as session:
        session.sock.sendall(connect_packet("plain"))
        answer = b""
        try:
            while chunk := session.sock.recv(64):
                answer += chunk
        except (ConnectionError, TimeoutError):
            pass
    assert not answer.startswith(b"\x20"), answer
    # ... and that port is the only one it opened (no default 1883 listener either).
    opened = re.findall(r"Opening ipv[46] listen socket on port (\d+)", broker.log_text())
    assert opened and set(opened) == {str(broker.port)}


def test_shipped_config_has_one_tls_listener_and_no_anonymous() -> None:
    lines = [
        line.split()
        for line in SHIPPED_CONF.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    settings: dict[str, list[str]] = {}
    for key, *value in lines:
        settings.setdefault(key, []).append(" ".join(value))
    assert settings["listener"] == ["8883"]
    assert "port" not in settings and "bind_address" not in settings  # legacy listeners
    for key, value in {
        "allow_anonymous": "false",
        "require_certificate": "true",
        "use_identity_as_username": "true",
        "persistence": "true",
        "per_listener_settings": "false",
    }.items():
        assert settings[key] == [value], key
    for key in ("cafile", "certfile", "keyfile", "crlfile", "acl_file"):
        assert len(settings[key]) == 1, key
    assert not {"psk_file", "password_file", "websockets", "http_dir"} & settings.keys()
