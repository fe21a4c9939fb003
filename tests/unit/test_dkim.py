"""DKIM verification (gateway/auth/dkim.py) and DMARC through DKIM, on real DNS.

Keys are made here (cryptography: RSA 2048, Ed25519), their records served by Debian's
dnsmasq on loopback (tests/support/dnsmasq.py), messages signed by dkimpy's own signer
as a real signing MTA would (tests/support/dkim_signer.py). A DKIM key look-up that
times out while the DMARC record answers needs tests/support/dns_server.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import dkim as dkimpy
import pytest

from gateway.auth import DkimOutcome, DkimResult, SpfResult, authenticate, dkim, dmarc
from gateway.auth.authres import header_value
from gateway.auth.resolver import Resolver
from tests.support.dkim_signer import SigningKey
from tests.support.dns_server import DnsServer
from tests.support.dnsmasq import Dnsmasq, free_port

RSA = SigningKey.rsa("sel2025", "anm.gov.my")
ED = SigningKey.ed25519("ed2025", "anm.gov.my")
SUB = SigningKey.rsa("mail", "pejabat.anm.gov.my")  # a subdomain signer
OTHER = SigningKey.rsa("sel", "anm-gov.example")  # a look-alike domain's own key
FORWARDER = SigningKey.rsa("arc", "lists.example")
BROKEN = SigningKey("rosak", "anm.gov.my", b"rsa-sha256", RSA.private, "", "rsa")
MSG = (b"From: Hebahan JANM <hebahan@anm.gov.my>\r\nTo: semua@anm.gov.my\r\n"
       b"Subject: Notis mesyuarat\r\nDate: Mon, 03 Mar 2025 09:00:00 +0800\r\n"
       b"Message-ID: <dkim-1@anm.gov.my>\r\n\r\nTuan/Puan,\r\n\r\nMesyuarat pada 10 Mac.\r\n")
TXT: dict[str, list[list[str]]] = {
    RSA.record_name: [RSA.record],
    ED.record_name: [ED.record],
    SUB.record_name: [SUB.record],
    OTHER.record_name: [OTHER.record],
    FORWARDER.record_name: [FORWARDER.record],
    # A key record whose p= is not a key, and one that is not a key record at all.
    BROKEN.record_name: [["v=DKIM1; k=rsa; p=bm90IGEga2V5"]],
    "teks._domainkey.anm.gov.my": [["v=spf1 -all"]],
    "anm.gov.my": [["v=spf1 ip4:127.0.0.1 -all"]],
    "_dmarc.anm.gov.my": [["v=DMARC1; p=reject; sp=quarantine; pct=50"]],
    "_dmarc.anm-gov.example": [["v=DMARC1; p=reject"]],
}


@pytest.fixture(scope="module")
def dns() -> Iterator[Dnsmasq]:
    with Dnsmasq(txt=TXT, local=("gov.my", "example")) as server:
        yield server


@pytest.fixture(scope="module")
def resolver(dns: Dnsmasq) -> Resolver:
    return Resolver(("127.0.0.1",), dns.port, timeout=1.0)


def one(message: bytes, resolver: Resolver) -> DkimResult:
    (result,) = dkim.verify(message, resolver)
    return result


# -- pass ------------------------------------------------------------------------------
@pytest.mark.parametrize(("key", "canon"), [
    (RSA, (b"relaxed", b"relaxed")),
    (RSA, (b"simple", b"simple")),
    (RSA, (b"relaxed", b"simple")),
    (ED, (b"relaxed", b"relaxed")),
    (ED, (b"simple", b"simple")),
])
def test_a_good_signature_passes(resolver: Resolver, key: SigningKey,
                                 canon: tuple[bytes, bytes]) -> None:
    signed = key.sign(MSG, canonicalize=canon)
    got = one(signed, resolver)
    assert (got.result, got.domain, got.selector, got.algorithm) == \
        ("pass", "anm.gov.my", key.selector, key.algorithm.decode())
    b = re.search(rb"\bb=([A-Za-z0-9+/\s]+)", signed)
    assert b is not None and got.b == re.sub(rb"\s", b"", b.group(1)).decode()[:12]


def test_no_signature_is_no_result(resolver: Resolver) -> None:
    assert dkim.verify(MSG, resolver) == ()
    assert dkim.verify_arc(MSG, resolver) == "none"


# -- fail ------------------------------------------------------------------------------
@pytest.mark.parametrize("key", [RSA, ED])
def test_a_body_changed_after_signing_fails(resolver: Resolver, key: SigningKey) -> None:
    signed = key.sign(MSG)
    got = one(signed.replace(b"10 Mac", b"11 Mac"), resolver)
    assert (got.result, got.reason) == ("fail", "body hash does not match")


@pytest.mark.parametrize("key", [RSA, ED])
def test_a_signed_header_changed_after_signing_fails(resolver: Resolver,
                                                     key: SigningKey) -> None:
    signed = key.sign(MSG)
    got = one(signed.replace(b"Subject: Notis", b"Subject: Kemas kini kata laluan"),
              resolver)
    assert (got.result, got.reason) == ("fail", "signature does not verify")


def test_simple_header_canonicalisation_is_byte_exact_relaxed_is_not(
        resolver: Resolver) -> None:
    def respace(m: bytes) -> bytes:
        return m.replace(b"Subject: Notis", b"Subject:  Notis")
    assert one(respace(RSA.sign(MSG, canonicalize=(b"simple", b"simple"))),
               resolver).result == "fail"
    assert one(respace(RSA.sign(MSG, canonicalize=(b"relaxed", b"relaxed"))),
               resolver).result == "pass"


def test_a_signature_claiming_another_domain_with_its_key_fails(resolver: Resolver) -> None:
    # Signed with the look-alike's private key but claiming d=anm.gov.my, s=sel2025.
    signed = OTHER.sign(MSG)
    forged = signed.replace(b"anm-gov.example", b"anm.gov.my").replace(
        b"s=sel;", b"s=sel2025;")
    assert one(forged, resolver).result == "fail"


# -- permerror ---------------------------------------------------------------------------
def test_key_record_problems_are_permerror(resolver: Resolver) -> None:
    broken = one(BROKEN.sign(MSG), resolver)
    assert (broken.result, broken.reason) == ("permerror", "no usable key record")
    signed = RSA.sign(MSG).replace(b"s=sel2025", b"s=teks")
    assert one(signed, resolver).result == "permerror"
    missing = RSA.sign(MSG).replace(b"s=sel2025", b"s=tiada")
    assert (one(missing, resolver).result, one(missing, resolver).domain) == \
        ("permerror", "anm.gov.my")


def test_signature_field_problems_are_permerror(resolver: Resolver) -> None:
    signed = RSA.sign(MSG)
    no_from = re.sub(rb"h=[^;]*;", b"h=subject : to;", signed, count=1)
    got = one(no_from, resolver)
    assert (got.result, got.reason) == ("permerror", "From is not signed (RFC 6376 5.4)")
    no_bh = re.sub(rb"bh=[^;]*;", b"", signed, count=1)
    assert one(no_bh, resolver).result == "permerror"
    sha1 = RSA.sign(MSG, algorithm=b"rsa-sha1")
    assert one(sha1, resolver).reason == "rsa-sha1 is not accepted (RFC 8301)"
    garbage = b"DKIM-Signature: \x00\xff;;; ===\r\n" + MSG
    assert one(garbage, resolver).result == "permerror"


def test_an_rsa_key_under_1024_bits_is_permerror(dns: Dnsmasq) -> None:
    small = SigningKey.weak_rsa("kecil", "anm.gov.my")
    with Dnsmasq(txt={small.record_name: [small.record]}, local=("gov.my",)) as server:
        got = one(small.sign(MSG), Resolver(("127.0.0.1",), server.port, timeout=1.0))
    assert got.result == "permerror" and "1024" in got.reason


# -- temperror -------------------------------------------------------------------------
def test_dns_down_is_temperror_never_an_exception() -> None:
    signed = RSA.sign(MSG)
    with Dnsmasq(txt={RSA.record_name: [RSA.record]}, local=("gov.my",)) as server:
        resolver = Resolver(("127.0.0.1",), server.port, timeout=0.3)
        assert one(signed, resolver).result == "pass"
    # Stopped: nothing answers on its port (and the pass above was not cached for it).
    fresh = Resolver(("127.0.0.1",), server.port, timeout=0.3)
    got = one(signed, fresh)
    assert (got.result, got.domain, got.reason) == \
        ("temperror", "anm.gov.my", "key look-up failed (DNS)")
    closed = Resolver(("127.0.0.1",), free_port(), timeout=0.3)
    assert one(signed, closed).result == "temperror"


# -- l= --------------------------------------------------------------------------------
def test_l_covering_the_whole_body_passes_and_text_appended_is_policy(
        resolver: Resolver) -> None:
    signed = RSA.sign(MSG, length=True)
    assert b"l=" in signed
    assert one(signed, resolver).result == "pass"
    appended = signed + b"\r\nKlik http://phish.example/ untuk mengesahkan.\r\n"
    got = one(appended, resolver)
    assert (got.result, got.reason) == ("policy", "l= leaves part of the body unsigned")


# -- a singleton field added above the signed one (RFC 6376 8.15) ------------------------
REPLYING = MSG.replace(b"To: ", b"Reply-To: Urusetia <urusetia@anm.gov.my>\r\nTo: ", 1)


@pytest.mark.parametrize(("added", "name"), [
    (b"Reply-To: Bayaran <bayar@phish.example>\r\n", "Reply-To"),
    (b"Subject: Sahkan akaun anda: http://phish.example/\r\n", "Subject"),
    (b"to: semua-pegawai@anm.gov.my\r\n", "To"),  # names compare case-insensitively
    (b"Date: Tue, 04 Mar 2025 09:00:00 +0800\r\n", "Date"),
])
def test_a_signed_singleton_added_above_the_signed_one_is_policy_never_pass(
        resolver: Resolver, added: bytes, name: str) -> None:
    signed = RSA.sign(REPLYING)  # dkimpy's default h= lists each of these once
    assert one(signed, resolver).result == "pass"
    field = signed[:-len(REPLYING)]
    # Above the signature or between it and the signed fields: the verifier hashes the
    # bottom instance either way, a mail program shows the top one.
    for replay in (added + signed, field + added + REPLYING):
        got = one(replay, resolver)
        assert (got.result, got.reason) == \
            ("policy", f"{name} occurs 2 times, h= signs 1: an added instance is unsigned")
        outcome = dmarc.evaluate(resolver, "anm.gov.my", SpfResult("fail", "anm.gov.my"),
                                 dkim.verify(replay, resolver))
        assert (outcome.result, outcome.dkim_aligned) == ("fail", False)


def test_repeated_fields_and_unsigned_singletons_do_not_stop_a_pass(
        resolver: Resolver) -> None:
    signed = RSA.sign(REPLYING)
    # Several Received (repeatable, never signed), a repeatable field twice, and a
    # singleton h= does not name at all: the signature vouches for none of them.
    extra = (b"Received: from a.example by b.example; Mon, 3 Mar 2025 09:00:01 +0800\r\n"
             b"Received: from c.example by a.example; Mon, 3 Mar 2025 09:00:02 +0800\r\n"
             b"Comments: satu\r\nComments: dua\r\n"
             b"In-Reply-To: <a@example.org>\r\nIn-Reply-To: <b@example.org>\r\n")
    assert b"in-reply-to" not in signed[:-len(REPLYING)].lower()
    assert one(extra + signed, resolver).result == "pass"


def test_an_over_signed_field_passes_and_an_added_from_never_passes(
        resolver: Resolver) -> None:
    # h= names Subject twice for its one instance (over-signing, RFC 6376 5.4.2): pass.
    field = dkim_sign(REPLYING, include_headers=[b"from", b"subject", b"subject"])
    assert one(field + REPLYING, resolver).result == "pass"
    # From duplicated above or below the signed one: dkimpy hashes an extra From, so
    # neither copy verifies as signed.
    for replay in (b"From: CEO <ceo@anm.gov.my>\r\n" + field + REPLYING,
                   field + REPLYING.replace(b"\r\n\r\n", b"\r\nFrom: CEO <ceo@anm.gov.my>"
                                            b"\r\n\r\n", 1)):
        assert one(replay, resolver).result == "fail"


def dkim_sign(message: bytes, include_headers: list[bytes]) -> bytes:
    """The DKIM-Signature field (with its CRLF) dkimpy makes with RSA's key."""
    return bytes(dkimpy.sign(message, RSA.selector.encode(), RSA.domain.encode(), RSA.private,
                             include_headers=include_headers))


# -- several signatures ---------------------------------------------------------------
def test_every_signature_is_verified_in_header_order(resolver: Resolver) -> None:
    good = ED.sign(MSG)
    both = RSA.sign(good)  # RSA on top, then ED
    # Break only the ED signature: its b= changes, the RSA one did not sign it. The
    # value's first character is any of base64's 64 (`+` and `/` too: matching only
    # letters and digits left the signature whole one run in 32), maybe after a fold.
    top, rest = both.split(b"DKIM-Signature: v=1; a=ed25519", 1)
    broken, changed = re.subn(
        rb"\bb=(\s*)([A-Za-z0-9+/])",
        lambda m: b"b=" + m.group(1) + (b"A" if m.group(2) != b"A" else b"B"), rest, count=1)
    assert changed == 1
    broken = top + b"DKIM-Signature: v=1; a=ed25519" + broken
    got = dkim.verify(broken, resolver)
    assert [(r.result, r.algorithm) for r in got] == \
        [("pass", "rsa-sha256"), ("fail", "ed25519-sha256")]


def test_more_signatures_than_verified_are_reported(resolver: Resolver) -> None:
    signed = MSG
    for _ in range(dkim.MAX_SIGNATURES + 2):
        signed = RSA.sign(signed)
    got = dkim.verify(signed, resolver)
    assert len(got) == dkim.MAX_SIGNATURES + 1
    assert {r.result for r in got[:-1]} == {"pass"}
    assert (got[-1].result, got[-1].reason) == \
        ("policy", f"2 more signatures not verified (at most {dkim.MAX_SIGNATURES})")


# -- ARC (reported only) -----------------------------------------------------------------
def test_arc_chain_is_reported(resolver: Resolver) -> None:
    received = (b"Authentication-Results: lists.example; dkim=pass header.d=anm.gov.my\r\n"
                + RSA.sign(MSG))
    sealed = FORWARDER.arc_seal(received)
    assert dkim.verify_arc(sealed, resolver) == "pass"
    assert dkim.verify_arc(sealed.replace(b"10 Mac", b"11 Mac"), resolver) == "fail"
    closed = Resolver(("127.0.0.1",), free_port(), timeout=0.3)
    assert dkim.verify_arc(sealed, closed) == "temperror"


# -- DMARC through DKIM ------------------------------------------------------------------
def test_forwarded_message_passes_dmarc_on_aligned_dkim_alone(resolver: Resolver) -> None:
    # 127.0.0.2 is not in anm.gov.my's SPF: the forwarder's hop.
    got = authenticate(resolver, client_ip="127.0.0.2", helo="mx.forwarder.test",
                       mail_from="hebahan@anm.gov.my", from_domain="anm.gov.my",
                       message=RSA.sign(MSG))
    assert got.spf.result == "fail"
    assert (got.dmarc.result, got.dmarc.dkim_aligned, got.dmarc.spf_aligned) == \
        ("pass", True, False)
    assert (got.dmarc.policy, got.dmarc.subdomain_policy, got.dmarc.pct) == \
        ("reject", "quarantine", 50)
    evidence = got.as_dict()
    assert evidence["dkim"] == [{"result": "pass", "domain": "anm.gov.my",
                                 "selector": "sel2025"}]
    assert evidence["dkim_aligned"] is True and evidence["dmarc"] == "pass"
    value = header_value("gw.anm.gov.my", got, mail_from="hebahan@anm.gov.my", helo="h")
    assert re.search(r"; dkim=pass header\.d=anm\.gov\.my header\.s=sel2025 "
                     r"header\.b=\"?[A-Za-z0-9+/]{12}\"?; dmarc=pass", value), value


@pytest.mark.parametrize(("message", "why"), [
    (MSG, "no DKIM signature"),
    (RSA.sign(MSG).replace(b"10 Mac", b"11 Mac"), "no DKIM signature passed"),
    (OTHER.sign(MSG), "DKIM passed only for domains not aligned with From"),
])
def test_forged_announcements_fail_dmarc(resolver: Resolver, message: bytes,
                                         why: str) -> None:
    got = authenticate(resolver, client_ip="127.0.0.2", helo="mx.evil.test",
                       mail_from="hebahan@anm.gov.my", from_domain="anm.gov.my",
                       message=message)
    assert (got.dmarc.result, got.dmarc.dkim_aligned) == ("fail", False)
    assert why in got.dmarc.reason


def test_subdomain_signer_aligns_relaxed_but_not_strict(resolver: Resolver) -> None:
    signed = SUB.sign(MSG)
    relaxed = dmarc.evaluate(resolver, "anm.gov.my",
                             SpfResult("fail", "anm.gov.my"), dkim.verify(signed, resolver))
    assert (relaxed.result, relaxed.dkim_aligned, relaxed.adkim) == ("pass", True, "r")
    # ketat.gov.my publishes adkim=s: a subdomain signer (a real signature by
    # pejabat.ketat.gov.my, whose key is served) does not align, its own name does.
    strict_key = SigningKey("mail", "pejabat.ketat.gov.my", SUB.algorithm, SUB.private,
                            SUB.public_b64, "rsa")
    exact_key = SigningKey("mail", "ketat.gov.my", SUB.algorithm, SUB.private,
                           SUB.public_b64, "rsa")
    zone: dict[str, list[tuple[str, object]]] = {
        "_dmarc.ketat.gov.my": [("TXT", "v=DMARC1; p=reject; adkim=s; aspf=s")],
        strict_key.record_name: [("TXT", strict_key.record)],
        exact_key.record_name: [("TXT", exact_key.record)]}
    ketat = MSG.replace(b"hebahan@anm.gov.my", b"hebahan@ketat.gov.my")
    spf = SpfResult("fail", "ketat.gov.my")
    with DnsServer(zone) as server:
        own = Resolver(("127.0.0.1",), server.port, timeout=1.0)
        sub_results = dkim.verify(strict_key.sign(ketat), own)
        assert [r.result for r in sub_results] == ["pass"]
        strict = dmarc.evaluate(own, "ketat.gov.my", spf, sub_results)
        assert (strict.result, strict.dkim_aligned, strict.adkim) == ("fail", False, "s")
        exact = dmarc.evaluate(own, "ketat.gov.my", spf,
                               dkim.verify(exact_key.sign(ketat), own))
        assert (exact.result, exact.dkim_aligned) == ("pass", True)


def test_subdomain_from_gets_the_sp_policy(resolver: Resolver) -> None:
    got = dmarc.evaluate(resolver, "pejabat.anm.gov.my",
                         SpfResult("fail", "pejabat.anm.gov.my"),
                         dkim.verify(SUB.sign(MSG), resolver))
    assert (got.result, got.policy, got.record_domain) == ("pass", "quarantine", "anm.gov.my")


def test_only_pass_aligns_never_policy_or_fail(resolver: Resolver) -> None:
    spf = SpfResult("fail", "anm.gov.my")
    outcomes: tuple[DkimOutcome, ...] = ("fail", "policy", "permerror", "neutral")
    for result in outcomes:
        got = dmarc.evaluate(resolver, "anm.gov.my", spf,
                             (DkimResult(result, "anm.gov.my", "s"),))
        assert (got.result, got.dkim_aligned) == ("fail", False), result


def test_a_dkim_key_timeout_for_the_aligned_domain_is_dmarc_temperror() -> None:
    zone = {"_dmarc.anm.gov.my": [("TXT", "v=DMARC1; p=reject")],
            RSA.record_name: [("TIMEOUT", "")],
            OTHER.record_name: [("TXT", "".join(OTHER.record))]}
    with DnsServer(zone) as server:
        resolver = Resolver(("127.0.0.1",), server.port, timeout=0.3)
        down = dkim.verify(RSA.sign(MSG), resolver)
        assert [r.result for r in down] == ["temperror"]
        got = dmarc.evaluate(resolver, "anm.gov.my", SpfResult("fail", "anm.gov.my"),
                             down)
        assert (got.result, got.reason) == ("temperror", "DKIM key look-up failed")
        # Another domain's key trouble cannot make the From domain pass: still fail.
        unrelated = (DkimResult("temperror", "elsewhere.example", "s"),)
        assert dmarc.evaluate(resolver, "anm.gov.my", SpfResult("fail", "anm.gov.my"),
                              unrelated).result == "fail"
