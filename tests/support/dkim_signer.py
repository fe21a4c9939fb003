"""Signed test messages for DKIM verification: keys the tests make, records, signatures.

    key = SigningKey.rsa("sel", "anm.gov.my")        # RSA 2048 (cryptography)
    key = SigningKey.ed25519("ed", "anm.gov.my")     # Ed25519 (RFC 8463)
    Dnsmasq(txt={key.record_name: [key.record]})     # the public key, as a signer publishes it
    signed = key.sign(message, canonicalize=(b"relaxed", b"relaxed"))

Signing is dkimpy's `dkim.sign` (and `dkim.arc_sign`), as a real signer (dkimpy-milter)
does; the record is `v=DKIM1; k=...; p=...` (RFC 6376 3.6.1) split into strings of at
most 250 characters, one TXT record (dnsmasq and tests/support/dns_server.py both take
that shape). tests/support/dkim_keys.py is the signing transform's own helper.
"""

from __future__ import annotations

import base64
import subprocess
from dataclasses import dataclass

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa


def _strings(text: str) -> list[str]:
    return [text[i:i + 250] for i in range(0, len(text), 250)]


@dataclass(frozen=True)
class SigningKey:
    selector: str
    domain: str
    algorithm: bytes  # a= of the signatures
    private: bytes  # what dkim.sign takes
    public_b64: str  # p= of the key record
    k: str  # k= of the key record

    @classmethod
    def rsa(cls, selector: str, domain: str, bits: int = 2048) -> SigningKey:
        key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
        private = key.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.TraditionalOpenSSL,
                                    serialization.NoEncryption())
        public = key.public_key().public_bytes(serialization.Encoding.DER,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
        return cls(selector, domain, b"rsa-sha256", private,
                   base64.b64encode(public).decode("ascii"), "rsa")

    @classmethod
    def weak_rsa(cls, selector: str, domain: str, bits: int = 768) -> SigningKey:
        """An RSA key too short for RFC 8301, made by openssl (cryptography refuses to)."""
        pem = subprocess.run(["openssl", "genrsa", "-traditional", str(bits)],
                             capture_output=True, check=True, timeout=30).stdout
        key = serialization.load_pem_private_key(pem, password=None)
        public = key.public_key().public_bytes(serialization.Encoding.DER,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
        return cls(selector, domain, b"rsa-sha256", pem,
                   base64.b64encode(public).decode("ascii"), "rsa")

    @classmethod
    def ed25519(cls, selector: str, domain: str) -> SigningKey:
        key = ed25519.Ed25519PrivateKey.generate()
        seed = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                 serialization.NoEncryption())
        public = key.public_key().public_bytes(serialization.Encoding.Raw,
                                               serialization.PublicFormat.Raw)
        return cls(selector, domain, b"ed25519-sha256", base64.b64encode(seed),
                   base64.b64encode(public).decode("ascii"), "ed25519")

    @property
    def record_name(self) -> str:
        return f"{self.selector}._domainkey.{self.domain}"

    @property
    def record(self) -> list[str]:
        """The key record's character-strings (one TXT record)."""
        return _strings(f"v=DKIM1; k={self.k}; p={self.public_b64}")

    def sign(self, message: bytes, *,
             canonicalize: tuple[bytes, bytes] = (b"relaxed", b"relaxed"),
             length: bool = False, algorithm: bytes | None = None) -> bytes:
        """`message` with a DKIM-Signature field made with this key on top."""
        field = dkim.sign(message, self.selector.encode(), self.domain.encode(),
                          self.private, canonicalize=canonicalize,
                          signature_algorithm=algorithm or self.algorithm, length=length)
        return bytes(field) + message

    def arc_seal(self, message: bytes) -> bytes:
        """`message` with one ARC set on top, as a forwarder at this key's domain adds
        after recording its own Authentication-Results (authserv-id = the domain)."""
        fields = dkim.arc_sign(message, self.selector.encode(), self.domain.encode(),
                               self.private, self.domain.encode())
        return b"".join(fields) + message
