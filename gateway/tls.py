"""TLS material: the contexts the gateway serves and dials with, and the development certificate.

`server_context` is what the SMTP proxy offers with STARTTLS (certificate and key
from `tls:` in the config); `client_context` is what the relay uses towards the
upstream. Both refuse anything older than TLS 1.2. Contexts are cached per file
version, because the proxy asks for one on every connection and loading a chain
costs milliseconds; a certificate replaced on disk is picked up by the next
connection. The `check_*` functions are the config loader's validation, so a
missing, unreadable or mismatched file is a load error, not a failure at the
first STARTTLS.
"""

from __future__ import annotations

import datetime
import functools
import ipaddress
import logging
import os
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.config import GatewayConfig, UpstreamTlsSettings

log = logging.getLogger(__name__)

MINIMUM_VERSION = ssl.TLSVersion.TLSv1_2
_PEM_CERT = b"-----BEGIN CERTIFICATE-----"
FileStamp = tuple[int, int, int]


def _no_password() -> bytes:
    # An encrypted key would make OpenSSL prompt on the terminal; a gateway has none.
    return b""


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read {what} {path}: {exc.strerror or exc}") from None


# -- config validation ----------------------------------------------------------------
def check_certificate(path: Path) -> None:
    """A readable PEM file holding at least one certificate, else ValueError."""
    data = _read(path, "certificate")
    if _PEM_CERT not in data:
        raise ValueError(f"{path} is not a PEM certificate (no BEGIN CERTIFICATE)")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        ctx.load_verify_locations(cadata=data.decode("ascii", "replace"))
    except (ssl.SSLError, ValueError) as exc:
        raise ValueError(f"{path} is not a valid PEM certificate: {exc}") from None


def check_key(cert: Path, key: Path) -> None:
    """A readable, unencrypted PEM key that matches the certificate, else ValueError."""
    _read(key, "key")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        ctx.load_cert_chain(cert, key, password=_no_password)
    except ssl.SSLError as exc:
        if "KEY_VALUES_MISMATCH" in str(exc) or "key values mismatch" in str(exc):
            raise ValueError(f"key {key} does not match certificate {cert}") from None
        raise ValueError(f"{key} is not a usable PEM private key for {cert} "
                         "(an encrypted key is not supported)") from None
    except OSError as exc:
        raise ValueError(f"cannot read {key}: {exc.strerror or exc}") from None


def check_ca_file(path: Path) -> None:
    """A readable PEM bundle of CA certificates, else ValueError."""
    data = _read(path, "CA file")
    if _PEM_CERT not in data:
        raise ValueError(f"{path} is not a PEM CA bundle (no BEGIN CERTIFICATE)")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        ctx.load_verify_locations(cafile=path)
    except (ssl.SSLError, OSError) as exc:
        raise ValueError(f"{path} is not a valid PEM CA bundle: {exc}") from None


# -- contexts ---------------------------------------------------------------------------
def _stamp(path: Path) -> FileStamp:
    st = path.stat()
    return (st.st_mtime_ns, st.st_size, st.st_ino)


@functools.lru_cache(maxsize=8)
def _server_context(cert: Path, key: Path, _cert_stamp: FileStamp,
                    _key_stamp: FileStamp) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = MINIMUM_VERSION
    ctx.load_cert_chain(cert, key, password=_no_password)
    return ctx


_last_good: dict[tuple[Path, Path], ssl.SSLContext] = {}


def server_context(config: GatewayConfig) -> ssl.SSLContext | None:
    """The STARTTLS context for clients; None when no certificate is configured.

    If the files became unreadable after the config was loaded (a half-finished
    certificate renewal), the last context that loaded keeps serving, with a warning.
    """
    tls = config.tls
    if tls.cert is None or tls.key is None:
        return None
    pair = (tls.cert, tls.key)
    try:
        ctx = _server_context(tls.cert, tls.key, _stamp(tls.cert), _stamp(tls.key))
    except (OSError, ssl.SSLError) as exc:
        previous = _last_good.get(pair)
        if previous is None:
            raise
        log.warning("TLS certificate %s or key %s cannot be loaded (%s); "
                    "still serving the previous one", tls.cert, tls.key, exc)
        return previous
    _last_good[pair] = ctx
    return ctx


@functools.lru_cache(maxsize=8)
def _client_context(verify: bool, ca_file: Path | None,
                    _ca_stamp: FileStamp | None) -> ssl.SSLContext:
    if not verify:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    else:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_file)
    ctx.minimum_version = MINIMUM_VERSION
    return ctx


def client_context(settings: UpstreamTlsSettings) -> ssl.SSLContext:
    """The context for STARTTLS to the upstream: verifying (system store or ca_file) or not."""
    ca_file = settings.ca_file if settings.verify else None
    stamp = _stamp(ca_file) if ca_file is not None else None
    return _client_context(settings.verify, ca_file, stamp)


# -- development certificate ------------------------------------------------------------
@dataclass(frozen=True)
class DevCert:
    cert: Path
    key: Path


class ExistingFiles(Exception):
    """The certificate or key is already there and overwriting was not asked for."""


def generate_dev_cert(out_dir: Path, hostname: str, days: int, *,
                      force: bool = False) -> DevCert:
    """A self-signed certificate for `hostname` (DNS name or IP) and its key (mode 0600)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    if days < 1:
        raise ValueError("days must be at least 1")
    cert_path, key_path = out_dir / "gateway.crt", out_dir / "gateway.key"
    existing = [p for p in (cert_path, key_path) if p.exists()]
    if existing and not force:
        raise ExistingFiles(", ".join(str(p) for p in existing))
    san: x509.GeneralName
    try:
        san = x509.IPAddress(ipaddress.ip_address(hostname))
    except ValueError:
        san = x509.DNSName(hostname)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname[:64]),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME,
                                         "E-mail gateway (development certificate)")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder()
            .subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName([san]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption())
    out_dir.mkdir(parents=True, exist_ok=True)
    for path in (cert_path, key_path):
        path.unlink(missing_ok=True)
    # Created 0600 from the start: never a moment when the key is readable by others.
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key_pem)
    os.chmod(key_path, 0o600)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return DevCert(cert_path, key_path)
