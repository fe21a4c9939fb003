"""TLS test parts: a throwaway CA, certificates it signs, and an upstream that speaks STARTTLS.

The gateway's own certificates come from its `tls dev-cert` code; the CA here
exists only so the upstream-verification tests have a chain the gateway can be
told to trust (or not).
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gateway.policy_state import load_policy
from gateway.service import Gateway

from .support import FakeUpstream, Received, write_config


@dataclass(frozen=True)
class CertFiles:
    cert: Path
    key: Path


def _write(path: Path, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> CertFiles:
    path.mkdir(parents=True, exist_ok=True)
    (path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (path / "key.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return CertFiles(path / "cert.pem", path / "key.pem")


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _builder(subject: str, issuer: x509.Name, public: Any) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (x509.CertificateBuilder()
            .subject_name(_name(subject)).issuer_name(issuer)
            .public_key(public).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=2)))


def make_ca(where: Path, name: str = "Test CA") -> CertFiles:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (_builder(name, _name(name), key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA256()))
    return _write(where, key, cert)


def issue(ca: CertFiles, where: Path, hostname: str) -> CertFiles:
    """A server certificate for `hostname` (DNS name or IP) signed by the CA."""
    ca_key = serialization.load_pem_private_key(ca.key.read_bytes(), None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    ca_cert = x509.load_pem_x509_certificate(ca.cert.read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    san: x509.GeneralName
    try:
        san = x509.IPAddress(ipaddress.ip_address(hostname))
    except ValueError:
        san = x509.DNSName(hostname)
    cert = (_builder(hostname, ca_cert.subject, key.public_key())
            .add_extension(x509.SubjectAlternativeName([san]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    return _write(where, key, cert)


@dataclass
class TlsUpstream(FakeUpstream):
    """FakeUpstream that offers STARTTLS with the given certificate.

    `offer_starttls` False leaves it out of EHLO (and refuses the command);
    `inject_after_220` sends a plaintext reply right behind the 220 to STARTTLS, as a
    hostile upstream would to smuggle a reply into the encrypted session.
    `tls_messages` says, per received message, whether it came over TLS.
    """

    cert: CertFiles | None = None
    offer_starttls: bool = True
    inject_after_220: bool = False
    tls_messages: list[bool] = field(default_factory=list)
    handshakes: int = 0

    def _context(self) -> ssl.SSLContext:
        assert self.cert is not None
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.cert.cert, self.cert.key)
        return ctx

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        mail_from, rcpts, tls = "", list[str](), False
        try:
            writer.write(b"220 upstream.test ESMTP\r\n")
            while True:
                line = await asyncio.wait_for(reader.readline(), 10)
                if not line:
                    return
                cmd = line.decode().rstrip("\r\n")
                self.commands.append(cmd)
                verb = cmd.split(" ", 1)[0].upper()
                if verb == "EHLO":
                    offer = b"250-STARTTLS\r\n" if self.offer_starttls and not tls else b""
                    writer.write(b"250-upstream.test\r\n" + offer + b"250 8BITMIME\r\n")
                elif verb == "STARTTLS" and self.offer_starttls and not tls:
                    extra = b"250 injected\r\n" if self.inject_after_220 else b""
                    writer.write(b"220 2.0.0 Ready to start TLS\r\n" + extra)
                    await writer.drain()
                    try:
                        await asyncio.wait_for(writer.start_tls(self._context()), 10)
                    except (ssl.SSLError, OSError):
                        return  # the client refused our certificate: it hangs up
                    self.handshakes += 1
                    tls, mail_from, rcpts = True, "", []
                    continue
                elif verb == "MAIL":
                    mail_from, rcpts = cmd[10:].split(">")[0].lstrip("<"), []
                    writer.write(b"250 2.1.0 Sender ok\r\n")
                elif verb == "RCPT":
                    rcpts.append(cmd[8:].split(">")[0].lstrip("<"))
                    writer.write(b"250 2.1.5 Recipient ok\r\n")
                elif verb == "DATA":
                    writer.write(b"354 go ahead\r\n")
                    await writer.drain()
                    raw = await asyncio.wait_for(reader.readuntil(b"\r\n.\r\n"), 10)
                    body = raw[:-3].removeprefix(b".").replace(b"\r\n.", b"\r\n")
                    self.messages.append(Received(mail_from, list(rcpts), body))
                    self.tls_messages.append(tls)
                    writer.write(b"250 2.0.0 Ok: queued as T1\r\n")
                elif verb == "RSET":
                    mail_from, rcpts = "", []
                    writer.write(b"250 2.0.0 Ok\r\n")
                elif verb == "QUIT":
                    writer.write(b"221 2.0.0 Bye\r\n")
                    await writer.drain()
                    return
                else:
                    writer.write(b"502 5.5.2 Error\r\n")
                await writer.drain()
        except (ConnectionError, TimeoutError, asyncio.IncompleteReadError, ssl.SSLError):
            return
        finally:
            writer.close()


async def start_gateway(tmp: Path, *, upstream_port: int, tls: dict[str, Any]) -> Gateway:
    """A gateway on loopback with the given `tls:` section (support.write_config otherwise)."""
    path = write_config(tmp, upstream=f"smtp://127.0.0.1:{upstream_port}")
    config = yaml.safe_load(path.read_text())
    config["tls"] = tls
    path.write_text(yaml.safe_dump(config))
    gateway = Gateway(load_policy(path))
    await gateway.start()
    return gateway
