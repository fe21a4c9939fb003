"""DKIM signing keys made by the tests (cryptography) and verification against a real DNS server.

    key = make_key(tmp_path / "dkim.key", "rsa")          # RSA 2048, PKCS#8 PEM, mode 0600
    with Dnsmasq(txt={"gw._domainkey.anm.gov.my": [key.record]}) as dns_server:
        assert verify(relayed, dns_server.port)           # dkimpy, key looked up over DNS

`record` is the TXT record (RFC 6376 3.6.1; RFC 8463 for k=ed25519) as strings of at
most 255 octets (RFC 1035 3.3.14), the form `Dnsmasq(txt=...)` serves.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import dkim
import dns.resolver
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa


@dataclass(frozen=True)
class MadeKey:
    path: Path
    record: tuple[str, ...]


def make_key(path: Path, kind: Literal["rsa", "ed25519"] = "rsa", *, bits: int = 2048,
             mode: int = 0o600) -> MadeKey:
    """A new private key written to `path` (PKCS#8 PEM) and its DKIM TXT record."""
    key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
    if kind == "rsa":
        key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
        public = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        text = "v=DKIM1; k=rsa; p=" + base64.b64encode(public).decode("ascii")
    else:
        key = ed25519.Ed25519PrivateKey.generate()
        public = key.public_key().public_bytes(serialization.Encoding.Raw,
                                               serialization.PublicFormat.Raw)
        text = "v=DKIM1; k=ed25519; p=" + base64.b64encode(public).decode("ascii")
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(mode)
    return MadeKey(path, tuple(text[i:i + 255] for i in range(0, len(text), 255)))


def dns_lookup(port: int) -> Callable[..., bytes | None]:
    """dkimpy's `dnsfunc`: the TXT record of a name from the DNS server on 127.0.0.1:`port`."""
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = ["127.0.0.1"]
    resolver.port = port

    def lookup(name: bytes, timeout: float = 5) -> bytes | None:
        resolver.lifetime = timeout
        try:
            answer = resolver.resolve(name.decode("ascii"), "TXT")
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return None
        return b"".join(b"".join(r.strings) for r in answer)

    return lookup


def verify(message: bytes, port: int, index: int = 0) -> bool:
    """Whether the `index`-th (topmost: 0) DKIM signature of `message` verifies, its key
    looked up at the DNS server on 127.0.0.1:`port`."""
    d = dkim.DKIM(message)
    try:
        return bool(d.verify(idx=index, dnsfunc=dns_lookup(port)))
    except dkim.DKIMException:
        return False


def signature_tags(message: bytes, index: int = 0) -> dict[str, str]:
    """The tags of the `index`-th DKIM-Signature field (white space removed from values)."""
    d = dkim.DKIM(message)
    fields = [v for n, v in d.headers if n.lower() == b"dkim-signature"]
    value = fields[index].decode("ascii")
    tags: dict[str, str] = {}
    for part in value.split(";"):
        name, _, tag_value = part.partition("=")
        if name.strip():
            tags[name.strip()] = "".join(tag_value.split())
    return tags
