"""DKIM verification of every DKIM-Signature field (RFC 6376), and the ARC chain (RFC
8617, reported only), with dkimpy over the gateway's own resolver.

dkimpy does the cryptography and canonicalisation (relaxed and simple, rsa-sha256 and
ed25519-sha256 of RFC 8463, ed25519 through PyNaCl); its key look-ups go through
`gateway.auth.resolver.Resolver` (the configured `dns:` servers, port, timeout and
cache), never through the system's resolver. The result words are RFC 8601 2.7.1's:

- `pass`: the signature verifies and covers the whole body;
- `fail`: it does not verify (the body hash or the header hash differs: the message
  was changed after signing, or the signature was made with another key);
- `policy`: it verifies but the receiver does not accept it (RFC 8601 2.7.1): it
  carries `l=` shorter than the (canonicalised) body, so part of the body is unsigned
  and anything may have been appended (RFC 6376 8.2); or a field RFC 5322 3.6 allows
  only once (`SINGLETON_FIELDS`) that `h=` signs occurs in the message more often than
  `h=` lists it (RFC 6376 8.15): a verifier hashes the bottom instances (5.4.2), so an
  instance added above them is unsigned, and it is the one the gateway's message view
  and a mail program read. Several `Received` and other repeatable fields are fine, as
  is a singleton `h=` does not name at all (the signature vouches for no copy of it).
  The gateway never counts such a signature for DMARC or for
  `sender_auth: {dkim: [pass]}`;
- `permerror`: the signature cannot be verified and never will be: a field that does
  not parse or lacks a required tag, `h=` without From (RFC 6376 5.4), rsa-sha1 (RFC
  8301 3.1: verifiers MUST NOT accept it), an RSA key under 1024 bits (RFC 8301 3.2),
  no key record, a key record that does not parse or has the wrong `k=`, an expired
  (`x=`) or future (`t=`) signature;
- `temperror`: the key look-up met DNS trouble (`DnsTempError`: timeout, SERVFAIL,
  no server): the answer is unknown, never a pass;
- no DKIM-Signature field at all: no results (the caller reports `none`).

At most `MAX_SIGNATURES` fields are verified (each may cost a DNS look-up); further
ones are reported, not dropped, as one `policy` result saying how many were left.

Nothing raises out of `verify` or `verify_arc`: whatever dkimpy raises for a hostile
field is that signature's permerror. `message` must be the bytes as received (the
proxy's spool; the milter's rebuilt header block with the leading space kept,
SMFIP_HDR_LEADSPC, and the body chunks as sent): a byte changed is a `fail` under
simple canonicalisation.
"""

from __future__ import annotations

import binascii
import logging
from collections.abc import Callable

import dkim
from dkim.canonicalization import CanonicalizationPolicy

from gateway.auth import ArcOutcome, DkimResult
from gateway.auth.resolver import DnsNameError, DnsTempError, Resolver
from gateway.message.headers import header_end

MAX_SIGNATURES = 10
# RFC 5322 3.6: the fields a message carries at most once (the Resent-* fields come in
# blocks, one per resending, and are not here). Lower case, as h= names are compared.
SINGLETON_FIELDS: dict[str, str] = {n.lower(): n for n in (
    "From", "Sender", "Reply-To", "To", "Cc", "Bcc", "Subject", "Date", "Message-ID",
    "In-Reply-To", "References")}
MIN_RSA_BITS = 1024  # RFC 8301 3.2
_B_PREFIX = 12  # characters of b= reported as header.b (RFC 6008 asks for at least 8)

# dkimpy logs each failure at ERROR; the gateway reports them as results instead.
_QUIET = logging.getLogger("gateway.auth.dkim.dkimpy")
_QUIET.addHandler(logging.NullHandler())
_QUIET.propagate = False


class _DnsTrouble(Exception):
    """Raised through dkimpy by the look-up function: the key's answer is unknown."""


DnsFunc = Callable[..., bytes | None]


def _lookup(resolver: Resolver) -> DnsFunc:
    """dkimpy's `dnsfunc(name, timeout=...)`: the TXT record of `name` as bytes, None
    when there is none; `_DnsTrouble` on DNS trouble. The resolver's own timeout rules."""

    def txt(name: bytes, timeout: float = 5.0) -> bytes | None:
        del timeout  # the resolver's configured timeout applies
        try:
            records = resolver.txt(name.decode("utf-8"))
        except DnsTempError as exc:
            raise _DnsTrouble(str(exc)) from exc
        except (DnsNameError, UnicodeDecodeError):
            return None
        if len(records) != 1:
            # None, or several: RFC 6376 3.6.2.2 leaves several undefined; we refuse.
            return None
        return records[0].encode("utf-8")

    return txt


def _text(value: bytes | None) -> str:
    return "" if value is None else value.decode("ascii", "replace")


def _tags(field: bytes) -> dict[bytes, bytes]:
    """d=, s=, a=, b= of a field for the report, however broken the rest is."""
    tags: dict[bytes, bytes] = {}
    for part in field.split(b";"):
        name, eq, value = part.partition(b"=")
        key = name.strip().lower()
        if eq and key in (b"d", b"s", b"a", b"b") and key not in tags:
            tags[key] = b"".join(value.split())
    return tags


def _result(result: str, tags: dict[bytes, bytes], reason: str) -> DkimResult:
    return DkimResult(result, _text(tags.get(b"d")).lower(), _text(tags.get(b"s")),  # type: ignore[arg-type]
                      _text(tags.get(b"b"))[:_B_PREFIX], _text(tags.get(b"a")), reason)


def _unsigned_instance(headers: list[tuple[bytes, bytes]], signed: list[bytes]) -> str | None:
    """Why a verified signature is not accepted when a singleton field it signs
    (`SINGLETON_FIELDS`) occurs in `headers` (dkimpy's (name, value) list) more often
    than `signed` (the h= names as written, lower case) lists it; None when none does.
    RFC 6376 5.4.2 and 8.15: the verifier hashes the bottom instances, so the extra
    one, above them, is unsigned."""
    for name, shown in SINGLETON_FIELDS.items():
        listed = signed.count(name.encode("ascii"))
        if not listed:
            continue
        present = sum(1 for n, _ in headers if n.lower() == name.encode("ascii"))
        if present > listed:
            return (f"{shown} occurs {present} times, h= signs {listed}: "
                    "an added instance is unsigned")
    return None


def _verify_one(signer: dkim.DKIM, index: int, field: bytes, lookup: DnsFunc) -> DkimResult:
    tags = _tags(field)
    try:
        prep = signer.verify_headerprep(index)
    except dkim.DKIMException as exc:
        return _result("permerror", tags, f"signature field not valid: {type(exc).__name__}")
    if not prep:
        return _result("permerror", tags, "signature field not found")
    sig, include_headers, fields = prep
    signed = list(include_headers)  # dkimpy appends a From to its list when verifying
    if b"from" not in include_headers:
        return _result("permerror", tags, "From is not signed (RFC 6376 5.4)")
    if sig[b"a"].lower() == b"rsa-sha1":
        return _result("permerror", tags, "rsa-sha1 is not accepted (RFC 8301)")
    name = sig[b"s"] + b"._domainkey." + sig[b"d"] + b"."
    try:
        signer.pk, signer.keysize, signer.ktag, signer.seqtlsrpt = \
            dkim.load_pk_from_dns(name, lookup)
    except _DnsTrouble:
        return _result("temperror", tags, "key look-up failed (DNS)")
    except (dkim.DKIMException, binascii.Error, ValueError, TypeError, IndexError):
        return _result("permerror", tags, "no usable key record")
    try:
        verified = signer.verify_sig_process(sig, include_headers, fields[index], lookup)
    except dkim.ValidationError:
        return _result("fail", tags, "body hash does not match")
    except dkim.KeyFormatError:
        return _result("permerror", tags, f"key not acceptable (under {MIN_RSA_BITS} bits "
                                          "or not matching the signature)")
    except dkim.DKIMException as exc:
        return _result("permerror", tags, f"not verifiable: {type(exc).__name__}")
    if not verified:
        return _result("fail", tags, "signature does not verify")
    unsigned = _unsigned_instance(signer.headers, signed)
    if unsigned is not None:
        return _result("policy", tags, unsigned)
    if b"l" in sig:
        policy = CanonicalizationPolicy.from_c_value(sig.get(b"c", b"simple/simple"))
        body = policy.canonicalize_body(signer.body)
        if int(sig[b"l"]) < len(body):
            return _result("policy", tags, "l= leaves part of the body unsigned")
    return _result("pass", tags, "signature verified")


def verify(message: bytes, resolver: Resolver) -> tuple[DkimResult, ...]:
    """Results of every DKIM-Signature field of `message`, in header order ((): none).

    `message`: the received bytes, CRLF line ends. Key records are TXT at
    `<s>._domainkey.<d>` (RFC 6376 3.6.2.1) through `resolver`. Never raises.
    """
    try:
        signer = dkim.DKIM(message, logger=_QUIET, minkey=MIN_RSA_BITS)
    except Exception:  # dkimpy's parser on a hostile header block: no field can verify
        if b"dkim-signature" in message[:header_end(message)].lower():
            return (DkimResult("permerror", "", "", reason="header block not parseable"),)
        return ()
    fields = [value for name, value in signer.headers if name.lower() == b"dkim-signature"]
    lookup = _lookup(resolver)
    results: list[DkimResult] = []
    for index, field in enumerate(fields[:MAX_SIGNATURES]):
        try:
            results.append(_verify_one(signer, index, field, lookup))
        except Exception as exc:  # anything else dkimpy raises: this signature fails closed
            results.append(_result("permerror", _tags(field),
                                   f"not verifiable: {type(exc).__name__}"))
    left = len(fields) - MAX_SIGNATURES
    if left > 0:
        results.append(DkimResult("policy", "", "", reason=f"{left} more signatures not "
                                  f"verified (at most {MAX_SIGNATURES})"))
    return tuple(results)


def verify_arc(message: bytes, resolver: Resolver) -> ArcOutcome:
    """The ARC chain validation status (RFC 8617 5.2: cv=) of `message`: `none` without
    ARC sets, `pass`, `fail` (also a chain a sealer marked failed), or `temperror` for
    DNS trouble. Reported only: nothing in the gateway trusts it. Never raises."""
    try:
        signer = dkim.DKIM(message, logger=_QUIET)
        if not any(name.lower() == b"arc-seal" for name, _ in signer.headers):
            return "none"
        cv, _, _ = dkim.arc_verify(message, logger=_QUIET, dnsfunc=_lookup(resolver))
    except _DnsTrouble:
        return "temperror"
    except Exception:  # a hostile ARC set: the chain does not validate
        return "fail"
    if cv == dkim.CV_Pass:
        return "pass"
    if cv == dkim.CV_None:
        return "none"
    return "fail"
