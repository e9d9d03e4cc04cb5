"""A small certificate authority for the MQTT links: one CA, one certificate per identity.

Every MQTT client proves who it is with a certificate whose Common Name is its identity
(Mosquitto's ``use_identity_as_username``): a hub's CN is its hub id, a data-centre
service's CN starts with ``svc-``. The broker's ACL (deploy/mosquitto/acl) grants rights
by that name, so the names are checked here: a hub id may not start with ``svc-`` and a
service name must, so no hub certificate can ever carry a service's rights.

Layout of the PKI directory (``--dir``, default ``var/pki``)::

    ca.crt  ca.key          the CA (the key never leaves the admin machine)
    crl.pem                 revocation list, signed by the CA (empty after ``init``)
    hubs/<hub_id>.crt|.key  one per hub (clientAuth)
    services/<svc-name>.*   ingester, health check, ... (clientAuth)
    servers/<name>.*        the broker's own certificate (serverAuth, SAN)

Keys are EC P-256, written 0600 through a temporary file and an atomic rename. Issuing
over an existing certificate, or re-creating the CA, needs ``force=True``.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

Kind = Literal["hub", "service", "server"]

#: validity in days: the CA outlives every certificate it signs; hubs sit in homes, so
#: theirs lasts two years (rotation needs a visit or a remote update); data-centre
#: identities are rotated yearly.
CA_DAYS = 3650
LEAF_DAYS: dict[Kind, int] = {"hub": 730, "service": 365, "server": 365}
#: a CRL past its nextUpdate makes OpenSSL refuse *every* client: re-sign well before
CRL_DAYS = 180
#: certificates are back-dated a little so that a hub whose clock is slightly behind
#: does not see a certificate "not yet valid"
BACKDATE = timedelta(minutes=5)

SERVICE_PREFIX = "svc-"
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")  # as gateway.contract.v1.HubId
_SERVICE = re.compile(r"^svc-[a-z0-9][a-z0-9-]{0,59}$")
_SERVER = re.compile(r"^[a-z0-9][a-z0-9.-]{0,62}$")
_DNS = re.compile(
    r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)
_SUBDIR: dict[Kind, str] = {"hub": "hubs", "service": "services", "server": "servers"}


class PkiError(Exception):
    """Anything the operator must fix: a bad name, a missing CA, a file in the way."""


@dataclass(frozen=True, slots=True)
class Issued:
    name: str
    cert: Path
    key: Path
    serial: int
    not_after: datetime


# -- names and paths --------------------------------------------------------------------


def check_name(kind: Kind, name: str) -> str:
    """Refuse names the ACL could confuse: a hub called ``svc-...``, a service without it."""
    if kind == "hub":
        if not _HUB_ID.fullmatch(name):
            raise PkiError(
                f"hub id {name!r} must match {_HUB_ID.pattern} (the wire contract's hub id)"
            )
        if name.lower().startswith(SERVICE_PREFIX):
            raise PkiError(f"hub id {name!r} starts with {SERVICE_PREFIX!r}, reserved for services")
    elif kind == "service":
        if not _SERVICE.fullmatch(name):
            raise PkiError(
                f"service name {name!r} must start with {SERVICE_PREFIX!r} and use a-z, 0-9, '-'"
            )
    else:
        if not _SERVER.fullmatch(name) or name.startswith(SERVICE_PREFIX):
            raise PkiError(f"server name {name!r} must use a-z, 0-9, '.', '-' (no 'svc-')")
    return name


def cert_path(pki_dir: Path, kind: Kind, name: str) -> Path:
    return Path(pki_dir) / _SUBDIR[kind] / f"{name}.crt"


def key_path(pki_dir: Path, kind: Kind, name: str) -> Path:
    return Path(pki_dir) / _SUBDIR[kind] / f"{name}.key"


def ca_cert_path(pki_dir: Path) -> Path:
    return Path(pki_dir) / "ca.crt"


def ca_key_path(pki_dir: Path) -> Path:
    return Path(pki_dir) / "ca.key"


def crl_path(pki_dir: Path) -> Path:
    return Path(pki_dir) / "crl.pem"


# -- files ------------------------------------------------------------------------------


def _write(path: Path, data: bytes, mode: int) -> None:
    """Write atomically with ``mode`` from the first byte (a key is never world-readable)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def load_ca(pki_dir: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert_file, key_file = ca_cert_path(pki_dir), ca_key_path(pki_dir)
    if not cert_file.is_file() or not key_file.is_file():
        raise PkiError(f"no CA in {pki_dir} (run 'diatabase pki init --dir {pki_dir}' first)")
    try:
        cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
        key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    except (ValueError, TypeError) as err:
        raise PkiError(f"cannot read the CA in {pki_dir}: {err}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise PkiError(f"{key_file} is not an EC private key")
    return cert, key


# -- the CA -----------------------------------------------------------------------------


def init_ca(
    pki_dir: Path,
    *,
    common_name: str = "Diatabase MQTT CA",
    days: int = CA_DAYS,
    force: bool = False,
    now: datetime | None = None,
) -> Issued:
    """Create the CA key, its self-signed certificate and an empty CRL."""
    pki_dir = Path(pki_dir)
    if not force and (ca_cert_path(pki_dir).exists() or ca_key_path(pki_dir).exists()):
        raise PkiError(
            f"a CA already exists in {pki_dir}; --force replaces it and invalidates "
            "every certificate it signed"
        )
    if days < 1:
        raise PkiError("days must be at least 1")
    now = now or datetime.now(UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + timedelta(days=days))
        # path length 0: this CA signs end-entity certificates only
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), False)
        .sign(key, hashes.SHA256())
    )
    _write(ca_key_path(pki_dir), _key_pem(key), 0o600)
    _write(ca_cert_path(pki_dir), _cert_pem(cert), 0o644)
    _sign_crl(pki_dir, cert, key, revoked=[], now=now)
    return Issued(
        common_name,
        ca_cert_path(pki_dir),
        ca_key_path(pki_dir),
        cert.serial_number,
        cert.not_valid_after_utc,
    )


# -- leaf certificates ------------------------------------------------------------------


def issue(
    pki_dir: Path,
    kind: Kind,
    name: str,
    *,
    dns: Iterable[str] = (),
    ips: Iterable[str] = (),
    days: int | None = None,
    force: bool = False,
    now: datetime | None = None,
) -> Issued:
    """Issue a hub, service or server certificate signed by the CA in ``pki_dir``."""
    pki_dir = Path(pki_dir)
    check_name(kind, name)
    cert_file, key_file = cert_path(pki_dir, kind, name), key_path(pki_dir, kind, name)
    if not force and (cert_file.exists() or key_file.exists()):
        raise PkiError(f"{cert_file} already exists; --force issues a new key and certificate")
    days = LEAF_DAYS[kind] if days is None else days
    if days < 1:
        raise PkiError("days must be at least 1")
    sans = _sans(kind, name, dns, ips)
    ca_cert, ca_key = load_ca(pki_dir)
    now = now or datetime.now(UTC)
    not_after = min(now + timedelta(days=days), ca_cert.not_valid_after_utc)
    key = ec.generate_private_key(ec.SECP256R1())
    usage = ExtendedKeyUsageOID.SERVER_AUTH if kind == "server" else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, kind),
                    x509.NameAttribute(NameOID.COMMON_NAME, name),
                ]
            )
        )
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        # one purpose per certificate: a hub certificate cannot serve TLS, and the
        # broker's cannot log in as a client
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    _write(key_file, _key_pem(key), 0o600)
    _write(cert_file, _cert_pem(cert), 0o644)
    return Issued(name, cert_file, key_file, cert.serial_number, cert.not_valid_after_utc)


def _sans(kind: Kind, name: str, dns: Iterable[str], ips: Iterable[str]) -> list[x509.GeneralName]:
    dns, ips = list(dns), list(ips)
    if kind != "server":
        if dns or ips:
            raise PkiError("--dns and --ip belong to server certificates only")
        return []
    names: list[x509.GeneralName] = []
    for host in dict.fromkeys([name, *dns]):
        if not _DNS.fullmatch(host):
            raise PkiError(f"{host!r} is not a DNS name")
        names.append(x509.DNSName(host))
    for ip in dict.fromkeys(ips):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(ip)))
        except ValueError:
            raise PkiError(f"{ip!r} is not an IP address") from None
    return names


# -- revocation -------------------------------------------------------------------------


def revoke(pki_dir: Path, kind: Kind, name: str, *, now: datetime | None = None) -> int:
    """Add the certificate of ``name`` to the CRL and re-sign it; returns its serial.

    Mosquitto reads ``crlfile`` when the listener starts: restart the broker afterwards.
    """
    pki_dir = Path(pki_dir)
    check_name(kind, name)
    cert_file = cert_path(pki_dir, kind, name)
    if not cert_file.is_file():
        raise PkiError(f"no certificate {cert_file} to revoke")
    serial = x509.load_pem_x509_certificate(cert_file.read_bytes()).serial_number
    ca_cert, ca_key = load_ca(pki_dir)
    revoked = _revoked_serials(pki_dir, ca_cert)
    revoked.setdefault(serial, now or datetime.now(UTC))
    _sign_crl(pki_dir, ca_cert, ca_key, revoked=list(revoked.items()), now=now)
    return serial


def refresh_crl(pki_dir: Path, *, now: datetime | None = None) -> Path:
    """Re-sign the CRL with the same entries and a new nextUpdate (run it on a schedule)."""
    ca_cert, ca_key = load_ca(pki_dir)
    revoked = _revoked_serials(pki_dir, ca_cert)
    return _sign_crl(pki_dir, ca_cert, ca_key, revoked=list(revoked.items()), now=now)


def _revoked_serials(pki_dir: Path, ca_cert: x509.Certificate) -> dict[int, datetime]:
    path = crl_path(pki_dir)
    if not path.is_file():
        return {}
    crl = x509.load_pem_x509_crl(path.read_bytes())
    if not crl.is_signature_valid(ca_cert.public_key()):  # type: ignore[arg-type]
        raise PkiError(f"{path} is not signed by this CA")
    return {r.serial_number: r.revocation_date_utc for r in crl}


def _sign_crl(
    pki_dir: Path,
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    *,
    revoked: list[tuple[int, datetime]],
    now: datetime | None,
) -> Path:
    now = now or datetime.now(UTC)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca_cert.subject)
        .last_update(now - BACKDATE)
        .next_update(now + timedelta(days=CRL_DAYS))
    )
    for serial, when in sorted(revoked):
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when).build()
        )
    crl = builder.sign(ca_key, hashes.SHA256())
    path = crl_path(pki_dir)
    _write(path, crl.public_bytes(serialization.Encoding.PEM), 0o644)
    return path
