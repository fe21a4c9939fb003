"""DKIM signing of relayed outbound mail, after every other change the gateway makes.

The gateway tags subjects (`[HEBAHAN JANM]`), adds fields and removes forged
Authentication-Results, which breaks a signature the agency's own server made
before it. With `dkim_sign:` configured the gateway signs the message it relays
itself: RFC 6376 (DKIM), relaxed/relaxed canonicalization (3.4.2, 3.4.4), the
signature made by dkimpy (`dkim.sign`), its DKIM-Signature field put at the very
top of the header block (RFC 6376 5.6).

What is signed: a message relayed outbound (`Envelope.direction`) whose every
header From address is in the signing domain or one of its subdomains (a domain
signing mail it is not responsible for is wrong, and DMARC would not align it
anyway: RFC 7489 3.1.1). Inbound mail and outbound mail of other domains are
relayed as they are.

Which fields: the configured names (`dkim_sign.headers`, by default RFC 6376
5.4.1's list as dkimpy has it) that are present in the final header block, each
listed in `h=` once per instance present, and a field RFC 5322 3.6 allows only once
(`gateway.auth.dkim.SINGLETON_FIELDS`: From, Subject, To, Cc, Date, Reply-To, ...)
once more: over-signing (RFC 6376 5.4.2, 8.15). A verifier hashes the instances from
the bottom up and the extra name as an empty field, so a copy of such a field added
anywhere later (a second Subject or To above the signed one) breaks the signature,
while a repeatable field (Resent-*, List-*) added above stays outside it as an
unsigned field should. A name absent from the message is not listed in `h=`: a
next hop that adds a missing Date, Message-ID or To (Postfix's cleanup does for its
local clients) would otherwise break it. The names of fields the rules add
(`add_header`) are never signed: the proxy puts them at the top and the milter's
MTA at the bottom of the header block, and a signed name must mean the same field
to both.

Keys: PEM (PKCS#8 or PKCS#1 `RSA PRIVATE KEY`, as openssl and opendkim-genkey
write them; PKCS#8 for Ed25519), or dkimpy's own Ed25519 form (dknewkey: the
32-byte seed in base64). RSA (rsa-sha256, at least 1024 bits: RFC 8301 3.2) or
Ed25519 (ed25519-sha256, RFC 8463). The key is read once when the policy loads
(`Signer.load`), checked by signing a test message, and kept in memory, where the
inspection processes inherit it; a key file readable by other users is refused.

Memory: dkimpy takes the whole message as bytes and makes line lists and
canonicalized copies of it: signing a message costs about four times its size on
top of the relayed copy, in the inspection process that already holds it.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import stat
from collections import Counter
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import dkim
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from gateway.addresses import address_domain, domain_in
from gateway.auth.dkim import SINGLETON_FIELDS
from gateway.message.headers import header_end

if TYPE_CHECKING:
    from gateway.config import DkimSignSettings

FIELD = "DKIM-Signature"
Algorithm = Literal["rsa-sha256", "ed25519-sha256"]
# RFC 8301 3.2: signers MUST use RSA keys of at least 1024 bits (and SHOULD use 2048).
MIN_RSA_BITS = 1024
# Permission bits a private key file must not have: any for other users, and write
# for the group (group read is the usual root:gateway 0640 of /etc/gateway).
UNSAFE_MODE = 0o027
_CANONICALIZATION = (b"relaxed", b"relaxed")
_PROBE = b"From: probe@example.invalid\r\nSubject: probe\r\n\r\nprobe\r\n"
# A field's name at the start of a header line (RFC 5322 2.2; obs white space before
# the colon, 4.5).
_FIELD_NAME = re.compile(rb"^([!-9;-~]+)[ \t]*:", re.MULTILINE)


class KeyProblem(Exception):
    """Why the configured key cannot sign (the message names the file)."""


@dataclass(frozen=True)
class SigningKey:
    """A private key in the form dkimpy's `sign` takes: PKCS#1 PEM for rsa-sha256, the
    base64 Ed25519 seed for ed25519-sha256."""

    algorithm: Algorithm
    private: bytes


def read_key(path: Path, algorithm: Algorithm | None = None) -> SigningKey:
    """The DKIM private key in `path`; `algorithm`, when given, must fit its type.

    Raises KeyProblem: the file is missing or unreadable, readable by other users or
    writable by its group (`UNSAFE_MODE`), encrypted, a public key or no key at all,
    an RSA key under 1024 bits (RFC 8301 3.2), or of a type DKIM does not sign with.
    """
    where = os.path.abspath(path)
    try:
        with open(path, "rb") as f:
            info = os.fstat(f.fileno())
            data = f.read(64 * 1024)
    except OSError as exc:
        raise KeyProblem(f"{where} cannot be read: {exc.strerror or exc}") from None
    if not stat.S_ISREG(info.st_mode):
        raise KeyProblem(f"{where} is not a regular file")
    mode = stat.S_IMODE(info.st_mode)
    if mode & UNSAFE_MODE:
        raise KeyProblem(f"{where} has mode {mode:04o}: a private key must not be readable "
                         "by other users nor writable by its group (chmod 0600, or 0640 "
                         "owned by root and the gateway's group)")
    key = _parse_key(data, where)
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < MIN_RSA_BITS:
            raise KeyProblem(f"{where} is a {key.key_size}-bit RSA key: DKIM needs at least "
                             f"{MIN_RSA_BITS} bits (RFC 8301 3.2), 2048 recommended")
        found: SigningKey = SigningKey("rsa-sha256", key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption()))
    elif isinstance(key, ed25519.Ed25519PrivateKey):
        seed = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                 serialization.NoEncryption())
        found = SigningKey("ed25519-sha256", base64.b64encode(seed))
    else:
        raise KeyProblem(f"{where} is a {type(key).__name__.lstrip('_')}: DKIM signs with "
                         "RSA (rsa-sha256) or Ed25519 (ed25519-sha256) keys")
    if algorithm is not None and algorithm != found.algorithm:
        raise KeyProblem(f"{where} is a key for {found.algorithm}, but algorithm is "
                         f"{algorithm}")
    return found


def _parse_key(data: bytes, where: str) -> object:
    if b"-----BEGIN" in data:
        if b"PUBLIC KEY-----" in data and b"PRIVATE KEY-----" not in data:
            raise KeyProblem(f"{where} holds a public key, not the private key")
        try:
            return serialization.load_pem_private_key(data, password=None)
        except TypeError:
            raise KeyProblem(f"{where} is encrypted: the gateway needs it without a "
                             "passphrase (protect it by its file mode)") from None
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise KeyProblem(f"{where} is not a PEM private key the gateway can read: "
                             f"{exc}") from None
    # dkimpy's dknewkey writes an Ed25519 key as its 32-byte seed in base64.
    try:
        seed = base64.b64decode(b"".join(data.split()), validate=True)
    except (binascii.Error, ValueError):
        seed = b""
    if len(seed) == 32:
        return ed25519.Ed25519PrivateKey.from_private_bytes(seed)
    raise KeyProblem(f"{where} is not a private key: expected PEM (BEGIN PRIVATE KEY or "
                     "BEGIN RSA PRIVATE KEY) or a base64 Ed25519 seed")


@dataclass(frozen=True)
class Signer:
    """What `dkim_sign:` signs with: domain (d=), selector (s=), key, field names."""

    domain: str
    selector: str
    key: SigningKey
    headers: tuple[str, ...]  # lower case, "from" among them

    @classmethod
    def load(cls, settings: DkimSignSettings) -> Signer:
        """The signer of `settings`, its key read and tried on a test message.
        Raises KeyProblem (see `read_key`; also a key dkimpy refuses, e.g. Ed25519
        without PyNaCl)."""
        key = read_key(settings.key_file, settings.algorithm)
        signer = cls(settings.domain, settings.selector, key,
                     tuple(h.lower() for h in settings.headers))
        try:
            signer.signature(_PROBE, ("from",))
        except dkim.DKIMException as exc:
            raise KeyProblem(f"{os.path.abspath(settings.key_file)}: dkimpy cannot sign "
                             f"with it: {exc}") from None
        return signer

    def applies(self, direction: str, from_addresses: Iterable[str]) -> bool:
        """Whether a message relayed in `direction` whose header From holds
        `from_addresses` is ours to sign: outbound, every From address in the signing
        domain or a subdomain of it, and at least one."""
        addresses = tuple(from_addresses)
        return direction == "outbound" and bool(addresses) and all(
            domain_in(address_domain(a), (self.domain,)) for a in addresses)

    def sign(self, message: bytes, *, unsigned: Collection[str] = ()) -> tuple[str, str]:
        """The DKIM-Signature field for `message` (the bytes as relayed, CRLF or LF
        line endings) as (name, value), the value on one line (folded when written).

        Signed: the configured names present in the header block, except `unsigned`
        (the rules' added fields), each once per instance present and a singleton
        field (RFC 5322 3.6) once more, so an instance added later breaks the
        signature (RFC 6376 8.15). Raises dkim.DKIMException when dkimpy cannot parse
        the message (a header line that is no field); the caller tempfails.
        """
        skip = {n.lower() for n in unsigned}
        block = message[:header_end(message)]
        present = Counter(m.group(1).decode("ascii").lower()
                          for m in _FIELD_NAME.finditer(block))
        names: list[str] = []
        for name in self.headers:
            if present[name] and name not in skip:
                names += [name] * (present[name] + (name in SINGLETON_FIELDS))
        if "from" not in names:
            # dkimpy refuses a signature without From (RFC 6376 5.4); no From, or only
            # one the rules added, is not signed as ours (applies() saw addresses).
            names.insert(0, "from")
        return FIELD, self.signature(message, tuple(names))

    def signature(self, message: bytes, names: tuple[str, ...]) -> str:
        field = dkim.sign(message, self.selector.encode("ascii"), self.domain.encode("ascii"),
                          self.key.private, canonicalize=_CANONICALIZATION,
                          signature_algorithm=self.key.algorithm.encode("ascii"),
                          include_headers=[n.encode("ascii") for n in names])
        name, _, value = field.decode("ascii").partition(":")
        assert name == FIELD, name
        # One line: every fold becomes the space relaxed canonicalization makes of it
        # (RFC 6376 3.4.2), so the field may be folded anew when it is written.
        return " ".join(value.split())
