"""gateway.pki and ``diatabase pki``: what the certificates contain, how files are written,
and the one-line errors."""

from __future__ import annotations

import ipaddress
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from typer.testing import CliRunner

from gateway import pki
from gateway.cli.pki import pki_app

runner = CliRunner()


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(pki_app, list(args))
    return result.exit_code, result.output


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_cli_builds_a_complete_pki(tmp_path: Path) -> None:
    d = str(tmp_path / "pki")
    assert run("init", "--dir", d)[0] == 0
    assert run("issue-hub", "hub-0042", "--dir", d)[0] == 0
    assert run("issue-service", "svc-ingest", "--dir", d)[0] == 0
    code, out = run(
        "issue-server", "mosquitto", "--dns", "mqtt.example.org", "--ip", "127.0.0.1", "--dir", d
    )
    assert code == 0, out
    root = Path(d)
    ca = load(root / "ca.crt")
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).critical
    usage = ca.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign and usage.crl_sign
    assert isinstance(ca.public_key(), ec.EllipticCurvePublicKey)
    assert ca.public_key().curve.name == "secp256r1"  # type: ignore[union-attr]

    for path, cn, purpose in [
        (root / "hubs" / "hub-0042.crt", "hub-0042", ExtendedKeyUsageOID.CLIENT_AUTH),
        (root / "services" / "svc-ingest.crt", "svc-ingest", ExtendedKeyUsageOID.CLIENT_AUTH),
        (root / "servers" / "mosquitto.crt", "mosquitto", ExtendedKeyUsageOID.SERVER_AUTH),
    ]:
        cert = load(path)
        assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == cn
        assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
            purpose
        ]
        assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        cert.verify_directly_issued_by(ca)
        key_file = path.with_suffix(".key")
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    san = load(root / "servers" / "mosquitto.crt").extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    )
    assert san.value.get_values_for_type(x509.DNSName) == ["mosquitto", "mqtt.example.org"]
    assert san.value.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert stat.S_IMODE((root / "ca.key").stat().st_mode) == 0o600
    assert list(x509.load_pem_x509_crl((root / "crl.pem").read_bytes())) == []


def test_existing_ca_is_kept_without_force(tmp_path: Path) -> None:
    d = str(tmp_path)
    assert run("init", "--dir", d)[0] == 0
    before = (tmp_path / "ca.crt").read_bytes()
    code, out = run("init", "--dir", d)
    assert code == 2
    assert out.strip().startswith("error:") and "--force" in out
    assert (tmp_path / "ca.crt").read_bytes() == before
    assert run("init", "--dir", d, "--force")[0] == 0
    assert (tmp_path / "ca.crt").read_bytes() != before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["issue-hub", "svc-ingest"], "reserved for services"),
        (["issue-hub", "hub/1"], "must match"),
        (["issue-hub", "+"], "must match"),
        (["issue-service", "ingest"], "must start with 'svc-'"),
        (["issue-server", "mosquitto", "--ip", "localhost"], "not an IP address"),
        (["issue-server", "mosquitto", "--dns", "bad_name!"], "not a DNS name"),
        (["revoke", "hub", "hub-9"], "no certificate"),
        (["revoke", "user", "hub-9"], "KIND must be"),
    ],
)
def test_refusals_are_one_line_with_exit_code_2(
    tmp_path: Path, args: list[str], message: str
) -> None:
    assert run("init", "--dir", str(tmp_path))[0] == 0
    code, out = run(*args, "--dir", str(tmp_path))
    assert code == 2
    assert message in out and out.startswith("error:")
    assert len(out.strip().splitlines()) <= 2  # one message (the terminal may wrap it)


def test_issue_without_ca_and_reissue_needs_force(tmp_path: Path) -> None:
    code, out = run("issue-hub", "hub-1", "--dir", str(tmp_path))
    assert code == 2 and "pki init" in out
    assert run("init", "--dir", str(tmp_path))[0] == 0
    assert run("issue-hub", "hub-1", "--dir", str(tmp_path))[0] == 0
    assert run("issue-hub", "hub-1", "--dir", str(tmp_path))[0] == 2
    assert run("issue-hub", "hub-1", "--dir", str(tmp_path), "--force")[0] == 0


def test_revocation_list_accumulates_and_refreshes(tmp_path: Path) -> None:
    pki.init_ca(tmp_path)
    serials = {pki.issue(tmp_path, "hub", h).serial for h in ("hub-1", "hub-2")}
    assert run("revoke", "hub", "hub-1", "--dir", str(tmp_path))[0] == 0
    assert run("revoke", "hub", "hub-2", "--dir", str(tmp_path))[0] == 0
    assert run("refresh-crl", "--dir", str(tmp_path))[0] == 0
    crl = x509.load_pem_x509_crl(pki.crl_path(tmp_path).read_bytes())
    assert {r.serial_number for r in crl} == serials
    assert crl.is_signature_valid(load(pki.ca_cert_path(tmp_path)).public_key())  # type: ignore[arg-type]


def test_leaf_never_outlives_the_ca(tmp_path: Path) -> None:
    pki.init_ca(tmp_path, days=30)
    hub = pki.issue(tmp_path, "hub", "hub-1")  # asks for 730 days
    assert hub.not_after <= load(pki.ca_cert_path(tmp_path)).not_valid_after_utc
