"""DKIM signing after the gateway's own changes (`dkim_sign:`, gateway/transforms/dkim_sign.py).

Keys are made by the tests (cryptography: RSA 2048, Ed25519, and a few broken ones);
every signature is checked by dkimpy against the public key served by a real DNS
server (dnsmasq on loopback, tests/support/dnsmasq.py). The message goes through
`pipeline.inspect` with a real policy loaded from a config file, so the signature is
made after the subject tag, the rules' added fields and the gateway's own
Authentication-Results, as the front ends relay it. The SMTP proxy, cut-through and
the milter behind Postfix are tests/integration/test_dkim_sign_smtp.py and
test_dkim_sign_milter.py.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dkim
import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from gateway import pipeline
from gateway.config import DkimSignSettings, GatewayConfig
from gateway.envelope import Envelope
from gateway.frontends.pool import SIGN_COST_FACTOR, cost_of
from gateway.frontends.smtp_session import cut_through_status, cuts_through
from gateway.message.view import MessageView
from gateway.policy_state import PolicyState, load_policy
from gateway.problems import LoadError
from gateway.transforms.dkim_sign import KeyProblem, Signer, read_key
from tests.support.dkim_keys import MadeKey, make_key, signature_tags, verify
from tests.support.dnsmasq import Dnsmasq

DOMAIN = "anm.gov.my"
SELECTOR = "gw2025"
RECORD = f"{SELECTOR}._domainkey.{DOMAIN}"
TAG = "[HEBAHAN JANM]"

RULES = """
rules:
  - id: hebahan-tag
    description: "Tanda hebahan"
    reference: "JANM 4.5"
    direction: outbound
    when: {sender_in: [hebahan@anm.gov.my]}
    action: tag
    tag: "[HEBAHAN JANM]"
  - id: tambah-pengepala
    description: "Pengepala"
    reference: "PPPA test"
    direction: outbound
    when: {subject_matches: "Mesyuarat"}
    action: add_header
    header: {name: X-Gerbang, value: "diperiksa"}
"""


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, MadeKey]:
    base = tmp_path_factory.mktemp("keys")
    return {"rsa": make_key(base / "rsa.pem", "rsa"),
            "ed25519": make_key(base / "ed25519.pem", "ed25519")}


@pytest.fixture(scope="module")
def dns_server(keys: dict[str, MadeKey]) -> Iterator[Dnsmasq]:
    txt: dict[str, list[str | tuple[str, ...]]] = {
        RECORD: [keys["rsa"].record], f"ed._domainkey.{DOMAIN}": [keys["ed25519"].record]}
    with Dnsmasq(txt=txt, local=("gov.my",)) as server:
        yield server


def write_config(tmp_path: Path, dkim: dict[str, Any] | None, **more: Any) -> Path:
    rules = tmp_path / "rules"
    rules.mkdir(exist_ok=True)
    (rules / "10-test.yaml").write_text(RULES)
    config: dict[str, Any] = {
        "listeners": [{"name": "outbound", "listen": "127.0.0.1:0", "direction": "outbound"},
                      {"name": "inbound", "listen": "127.0.0.1:0", "direction": "inbound"}],
        "upstream": "smtp://127.0.0.1:2500",
        "agency_domains": [DOMAIN],
        "hebahan_senders": ["hebahan@anm.gov.my"],
        "rules_dir": str(rules),
        "rejection_log": str(tmp_path / "rejections.jsonl"),
        "hostname": "gw.anm.gov.my",
        **more,
    }
    if dkim is not None:
        config["dkim_sign"] = dkim
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def policy_for(tmp_path: Path, key: MadeKey, selector: str = SELECTOR, **more: Any
               ) -> PolicyState:
    dkim = {"domain": DOMAIN, "selector": selector, "key_file": str(key.path), **more}
    return load_policy(write_config(tmp_path, dkim))


def envelope(direction: str = "outbound", mail_from: str = "hebahan@anm.gov.my") -> Envelope:
    return Envelope(direction=direction, listener=direction,  # type: ignore[arg-type]
                    client_ip="127.0.0.1", helo="h", mail_from=mail_from,
                    rcpt_to=("semua@example.com",))


def message(subject: str, sender: str = "Hebahan JANM <hebahan@anm.gov.my>",
            extra: str = "") -> bytes:
    return (f"From: {sender}\r\nTo: semua@example.com\r\nSubject: {subject}\r\n"
            "Date: Mon, 03 Mar 2025 09:00:00 +0800\r\nMessage-ID: <h1@anm.gov.my>\r\n"
            f"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n{extra}"
            "Content-Transfer-Encoding: 8bit\r\n\r\n"
            "Tuan/Puan,  \r\n\r\nMesyuarat pada 10 Mac. \u2713\r\n\r\n\r\n").encode()


def relayed(policy: PolicyState, raw: bytes, env: Envelope | None = None
            ) -> pipeline.Inspection:
    inspection = pipeline.inspect(policy, raw, env or envelope())
    assert inspection.relay_bytes is not None, inspection.verdict
    return inspection


# -- the signature -------------------------------------------------------------------------

@pytest.mark.parametrize("subject", [
    "=?UTF-8?B?TWVzeXVhcmF0IGt1YXJ0ZXJhbiDigJMgc2VtdWEgcGVnYXdhaQ==?=",  # RFC 2047
    "Mesyuarat suku tahun \u2013 semua pegawai \u2713",  # raw UTF-8 (SMTPUTF8)
])
def test_tagged_non_ascii_subject_is_signed_and_verifies_over_dns(
        tmp_path: Path, keys: dict[str, MadeKey], dns_server: Dnsmasq, subject: str) -> None:
    policy = policy_for(tmp_path, keys["rsa"])
    inspection = relayed(policy, message(subject))
    out = inspection.relay_bytes
    assert out is not None
    assert out.startswith(b"DKIM-Signature: ")
    assert inspection.verdict.subject_tags == (TAG,)
    # The tag was put in before the signature was made: the signed Subject is tagged.
    assert policy.signer is not None
    view_subject = MessageView(out).subject
    assert view_subject.startswith(TAG + " Mesyuarat"), view_subject
    assert verify(out, dns_server.port)
    tags = signature_tags(out)
    assert (tags["d"], tags["s"], tags["a"], tags["c"]) == \
        (DOMAIN, SELECTOR, "rsa-sha256", "relaxed/relaxed")
    signed = tags["h"].split(":")
    assert signed[0] == "from" and "subject" in signed and "date" in signed
    # The rules' added field is not signed (the milter's MTA puts it elsewhere).
    assert b"X-Gerbang: diperiksa" in out and "x-gerbang" not in signed
    # A name the message does not have is not listed (a next hop may add it).
    assert "reply-to" not in signed and "cc" not in signed
    # The signature is what makes it verify: a changed subject or body does not.
    assert not verify(out.replace(b"Tuan/Puan", b"Tuan/Puan!"), dns_server.port)
    assert not verify(out.replace(b"Subject: ", b"Subject: X"), dns_server.port)
    # The milter inserts the same field: first of the trace fields.
    assert inspection.trace_headers[0][0] == "DKIM-Signature"


def test_ed25519_key_signs_ed25519_sha256(tmp_path: Path, keys: dict[str, MadeKey],
                                          dns_server: Dnsmasq) -> None:
    policy = policy_for(tmp_path, keys["ed25519"], selector="ed")
    out = relayed(policy, message("Mesyuarat \u2713")).relay_bytes
    assert out is not None
    assert signature_tags(out)["a"] == "ed25519-sha256"
    assert verify(out, dns_server.port)
    assert not verify(out.replace(b"10 Mac", b"11 Mac"), dns_server.port)


def test_signature_goes_above_authentication_results_and_signed_summary_survives(
        tmp_path: Path, keys: dict[str, MadeKey], dns_server: Dnsmasq) -> None:
    policy = policy_for(tmp_path, keys["rsa"])
    raw = message("Notis", extra="Authentication-Results: gw.anm.gov.my; spf=pass\r\n")
    inspection = relayed(policy, raw)
    out = inspection.relay_bytes
    assert out is not None
    assert b"spf=pass" not in out  # the forged field is gone before signing
    summary = pipeline.summarize(inspection)
    assert summary.relay_head is not None
    relay = summary.relay_head + raw[summary.body_offset:]
    assert relay == out and verify(relay, dns_server.port)


def test_subdomain_signed_other_domains_and_inbound_not(
        tmp_path: Path, keys: dict[str, MadeKey], dns_server: Dnsmasq) -> None:
    policy = policy_for(tmp_path, keys["rsa"])
    sub = relayed(policy, message("Notis", sender="a@jabatan.anm.gov.my"),
                  envelope(mail_from="a@jabatan.anm.gov.my")).relay_bytes
    assert sub is not None and verify(sub, dns_server.port)
    for sender, direction in (("a@example.com", "outbound"),
                              ("a@anm.gov.my.example.com", "outbound"),
                              ("a@anm.gov.my, b@example.com", "outbound"),
                              ("hebahan@anm.gov.my", "inbound")):
        raw = message("Notis", sender=sender)
        inspection = relayed(policy, raw, envelope(direction, mail_from="a@example.com"))
        assert inspection.relay_bytes is not None
        assert b"DKIM-Signature" not in inspection.relay_bytes, sender
        assert all(n != "DKIM-Signature" for n, _ in inspection.trace_headers)


def test_configured_headers_are_the_signed_ones(tmp_path: Path, keys: dict[str, MadeKey],
                                                dns_server: Dnsmasq) -> None:
    policy = policy_for(tmp_path, keys["rsa"], headers=["From", "Subject", "X-Gerbang"])
    out = relayed(policy, message("Mesyuarat")).relay_bytes
    assert out is not None
    # X-Gerbang is added by a rule: never signed, even when configured. From and
    # Subject are RFC 5322 singletons: over-signed (RFC 6376 8.15).
    assert signature_tags(out)["h"].split(":") == ["from", "from", "subject", "subject"]
    assert verify(out, dns_server.port)


def test_a_singleton_added_later_breaks_the_signature_a_repeatable_one_does_not(
        tmp_path: Path, keys: dict[str, MadeKey], dns_server: Dnsmasq) -> None:
    policy = policy_for(tmp_path, keys["rsa"], headers=["From", "To", "Subject", "Reply-To",
                                                        "Resent-To", "List-Id"])
    raw = message("Notis", extra="Resent-To: a@example.com\r\nResent-To: b@example.com\r\n"
                                 "List-Id: <notis.anm.gov.my>\r\n")
    out = relayed(policy, raw).relay_bytes
    assert out is not None and verify(out, dns_server.port)
    # Each instance once, a singleton once more; Reply-To is absent: not listed.
    assert signature_tags(out)["h"].split(":") == [
        "from", "from", "to", "to", "subject", "subject", "resent-to", "resent-to",
        "list-id"]
    field, _, rest = out.partition(b"\r\nX-Gerbang")  # the signature and the trace above
    for added in (b"To: rakan@example.org", b"Subject: Tukar akaun bank segera",
                  b"From: CEO <ceo@anm.gov.my>"):
        for where in (field + b"\r\n" + added + b"\r\nX-Gerbang" + rest,  # below ours
                      out.replace(b"\r\n\r\n", b"\r\n" + added + b"\r\n\r\n", 1)):
            assert not verify(where, dns_server.port), (added, where[:600])
    # A repeatable field (a Resent-* block, a List-*) added above stays unsigned, and a
    # next hop's Received and a missing Reply-To added do not break it either.
    later = (b"Received: from gw.anm.gov.my by mx.example.org; Mon, 3 Mar 2025\r\n"
             + out.replace(b"\r\nX-Gerbang", b"\r\nResent-To: c@example.com\r\n"
                           b"List-Id: <lain.example>\r\nX-Gerbang", 1)
             .replace(b"\r\n\r\n", b"\r\nReply-To: <r@anm.gov.my>\r\n\r\n", 1))
    assert verify(later, dns_server.port)


# -- configuration and the key -------------------------------------------------------------

def base_config(tmp_path: Path, **dkim: Any) -> dict[str, Any]:
    path = write_config(tmp_path, {"domain": DOMAIN, "selector": SELECTOR, "key_file": "k.pem",
                                   **dkim})
    config: dict[str, Any] = yaml.safe_load(path.read_text())
    return config


@pytest.mark.parametrize(("dkim", "words"), [
    ({"headers": ["Subject", "To"]}, "must include From"),
    ({"headers": ["From", "Received"]}, "Received must not be signed"),
    ({"headers": ["From", "bad name"]}, "bad header field name"),
    ({"selector": "bad_selector!"}, "bad selector"),
    ({"domain": "localhost"}, "bad domain"),
    ({"algorithm": "rsa-sha1"}, "algorithm"),
    ({"canonicalization": "simple"}, "canonicalization"),
])
def test_bad_settings_fail_at_load(tmp_path: Path, dkim: dict[str, Any], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        GatewayConfig.model_validate(base_config(tmp_path, **dkim))


def test_default_headers_follow_rfc_6376() -> None:
    settings = DkimSignSettings(domain="ANM.gov.my.", selector="a.b-1", key_file=Path("k"))
    assert settings.domain == DOMAIN
    for name in ("from", "to", "cc", "subject", "date", "message-id", "mime-version",
                 "content-type", "reply-to", "in-reply-to", "references"):
        assert name in settings.headers


def pem(key: Any, fmt: serialization.PrivateFormat,
        encryption: serialization.KeySerializationEncryption | None = None) -> bytes:
    return bytes(key.private_bytes(serialization.Encoding.PEM, fmt,
                                   encryption or serialization.NoEncryption()))


def test_key_forms_read(tmp_path: Path, keys: dict[str, MadeKey]) -> None:
    assert read_key(keys["rsa"].path).algorithm == "rsa-sha256"
    assert read_key(keys["ed25519"].path).algorithm == "ed25519-sha256"
    # PKCS#1 (opendkim-genkey) and dkimpy's own Ed25519 form (base64 seed, dknewkey).
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pkcs1 = tmp_path / "pkcs1.key"
    pkcs1.write_bytes(pem(rsa_key, serialization.PrivateFormat.TraditionalOpenSSL))
    pkcs1.chmod(0o640)
    assert b"BEGIN RSA PRIVATE KEY" in pkcs1.read_bytes()
    assert read_key(pkcs1).algorithm == "rsa-sha256"
    seed = tmp_path / "ed.key"
    seed.write_bytes(read_key(keys["ed25519"].path).private + b"\n")
    seed.chmod(0o600)
    assert read_key(seed, "ed25519-sha256").algorithm == "ed25519-sha256"


def test_bad_keys_are_refused(tmp_path: Path, keys: dict[str, MadeKey]) -> None:
    def refused(path: Path, words: str, algorithm: Any = None) -> None:
        with pytest.raises(KeyProblem, match=words):
            read_key(path, algorithm)

    refused(tmp_path / "missing.pem", "cannot be read: No such file")
    refused(tmp_path, "is not a regular file|cannot be read")
    open_key = make_key(tmp_path / "open.pem", "rsa", mode=0o644)
    refused(open_key.path, "mode 0644: a private key must not be readable by other users")
    group_writable = make_key(tmp_path / "gw.pem", "ed25519", mode=0o660)
    refused(group_writable.path, "mode 0660")
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    encrypted = tmp_path / "enc.pem"
    encrypted.write_bytes(pem(rsa_key, serialization.PrivateFormat.PKCS8,
                              serialization.BestAvailableEncryption(b"secret")))
    encrypted.chmod(0o600)
    refused(encrypted, "is encrypted")
    public = tmp_path / "public.pem"
    public.write_bytes(rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    public.chmod(0o600)
    refused(public, "holds a public key")
    garbage = tmp_path / "garbage.pem"
    garbage.write_bytes(b"not a key at all\n")
    garbage.chmod(0o600)
    refused(garbage, "is not a private key")
    ec_key = tmp_path / "ec.pem"
    ec_key.write_bytes(pem(ec.generate_private_key(ec.SECP256R1()),
                           serialization.PrivateFormat.PKCS8))
    ec_key.chmod(0o600)
    refused(ec_key, "DKIM signs with RSA")
    refused(keys["rsa"].path, "is a key for rsa-sha256, but algorithm is ed25519-sha256",
            "ed25519-sha256")
    small = tmp_path / "small.pem"
    made = subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt",
                           "rsa_keygen_bits:512", "-out", str(small)],
                          capture_output=True, check=False)
    assert made.returncode == 0, made.stderr
    small.chmod(0o600)
    refused(small, "512-bit RSA key: DKIM needs at least 1024")


def test_bad_key_stops_the_gateway_at_load_with_file_and_line(
        tmp_path: Path, keys: dict[str, MadeKey]) -> None:
    open_key = make_key(tmp_path / "open.pem", "rsa", mode=0o604)
    path = write_config(tmp_path, {"domain": DOMAIN, "selector": SELECTOR,
                                   "key_file": str(open_key.path)})
    line = next(n for n, text in enumerate(path.read_text().splitlines(), start=1)
                if text.strip().startswith("key_file:"))
    with pytest.raises(LoadError) as caught:
        load_policy(path)
    assert [str(p) for p in caught.value.problems] == [
        f"{path}:{line}: dkim_sign.key_file: cannot sign with DKIM: {open_key.path} has mode "
        "0604: a private key must not be readable by other users nor writable by its group "
        "(chmod 0600, or 0640 owned by root and the gateway's group)"]
    # The same key, made private, loads: the signer is in memory before any message.
    open_key.path.chmod(0o600)
    policy = load_policy(path)
    assert "signer" in policy.__dict__ and isinstance(policy.signer, Signer)


# -- cut-through -------------------------------------------------------------------------

def test_cut_through_falls_back_to_store_and_forward_for_outbound_only(
        tmp_path: Path, keys: dict[str, MadeKey]) -> None:
    dkim = {"domain": DOMAIN, "selector": SELECTOR, "key_file": str(keys["rsa"].path)}
    signing = load_policy(write_config(tmp_path, dkim, cut_through=True))
    assert not cuts_through(signing, "outbound")
    assert cuts_through(signing, "inbound")
    assert "outbound messages are stored and forwarded" in cut_through_status(signing)
    plain = load_policy(write_config(tmp_path, None, cut_through=True))
    assert cuts_through(plain, "outbound") and cuts_through(plain, "inbound")


def test_config_errors_name_file_line_and_what_is_expected(tmp_path: Path) -> None:
    path = write_config(tmp_path, {"domain": DOMAIN, "key_file": "k.pem", "header": ["From"]})
    with pytest.raises(LoadError) as caught:
        load_policy(path)
    lines = [str(p) for p in caught.value.problems]
    assert any(line.endswith("dkim_sign.selector: missing (required): must be the DKIM "
                             "selector (s=), e.g. gw2025") for line in lines), lines
    assert any("dkim_sign.header: unknown key, did you mean dkim_sign.headers?" in line
               for line in lines), lines


def test_signing_is_in_the_inspection_memory_estimate() -> None:
    size = 10 * 1024 * 1024
    assert cost_of(size, signs=True) - cost_of(size) == SIGN_COST_FACTOR * size
    assert SIGN_COST_FACTOR >= 4  # the signed copy and dkimpy's 3.6x (tracemalloc, 26 MB)


def test_a_message_dkimpy_cannot_parse_raises_never_relayed_unsigned(
        tmp_path: Path, keys: dict[str, MadeKey]) -> None:
    policy = policy_for(tmp_path, keys["rsa"])
    raw = message("Notis").replace(b"MIME-Version", b"Not a field\r\nMIME-Version")
    # The pipeline's caller turns the exception into 451 4.3.0 (ralat-dalaman).
    with pytest.raises(dkim.DKIMException):
        pipeline.inspect(policy, raw, envelope())
