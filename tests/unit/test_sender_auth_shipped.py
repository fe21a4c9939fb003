"""The shipped rules/40-hebahan.yaml decision table, through the pipeline, on real DNS.

tests/support/dns_server.py can do what dnsmasq cannot: leave chosen names
unanswered (a DMARC look-up that times out after SPF passed) and answer others.
The SMTP-level tests (tests/integration/test_hebahan_smtp.py) run the same rules
against dnsmasq; this table covers every rule id and the rule order.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.config import load_config
from gateway.envelope import Envelope
from gateway.message.view import MessageView
from gateway.pipeline import Inspection, inspect
from gateway.policy_state import PolicyState, load_policy_for
from tests.support.dns_server import DnsServer

REPO = Path(__file__).resolve().parents[2]
ZONE = {
    "anm.gov.my": [("TXT", "v=spf1 ip4:127.0.0.1 -all")],
    "_dmarc.anm.gov.my": [("TXT", "v=DMARC1; p=reject")],
    # SPF passes, the DMARC look-up never gets an answer.
    "lambat.gov.my": [("TXT", "v=spf1 ip4:127.0.0.1 -all")],
    "_dmarc.lambat.gov.my": [("TIMEOUT", "")],
    # SPF passes, no DMARC record at all (dmarc=none).
    "tiada-dmarc.gov.my": [("TXT", "v=spf1 ip4:127.0.0.1 -all")],
    # SPF record itself unreachable.
    "putus.gov.my": [("TIMEOUT", "")],
    # A broken SPF record: permerror.
    "rosak.gov.my": [("TXT", "v=spf1 include:tiada.rosak.gov.my -all")],
}
SENDERS = ["hebahan@anm.gov.my", "hebahan@lambat.gov.my", "hebahan@tiada-dmarc.gov.my",
           "hebahan@putus.gov.my", "hebahan@rosak.gov.my"]


@pytest.fixture(scope="module")
def dns() -> Iterator[DnsServer]:
    with DnsServer(ZONE) as server:
        yield server


@pytest.fixture(scope="module")
def policy(dns: DnsServer) -> PolicyState:
    config = load_config(REPO / "config" / "gateway.yaml")
    return load_policy_for(config.model_copy(update={
        "rules_dir": REPO / config.rules_dir, "hebahan_senders": tuple(SENDERS),
        "antivirus": None,
        "hebahan_relays": (),
        "dns": config.dns.model_copy(update={"port": dns.port, "timeout": 0.3})}))


def run(policy: PolicyState, *, mail_from: str, subject: str, header_from: str | None = None,
        client_ip: str = "127.0.0.1", direction: str = "inbound") -> Inspection:
    raw = (f"From: {header_from or mail_from}\r\nTo: semua@anm.gov.my\r\n"
           f"Subject: {subject}\r\nMessage-ID: <s@anm.gov.my>\r\n\r\nSalam.\r\n").encode()
    env = Envelope(direction=direction, listener="t", client_ip=client_ip,  # type: ignore[arg-type]
                   helo="mx.test", mail_from=mail_from, rcpt_to=("semua@anm.gov.my",))
    return inspect(policy, raw, env)


@pytest.mark.parametrize(("mail_from", "subject", "header_from", "client_ip", "want"), [
    # registered, SPF pass, aligned: tagged (with or without the tag already)
    ("hebahan@anm.gov.my", "Notis", None, "127.0.0.1", (250, "hebahan-tag-masuk")),
    ("hebahan@anm.gov.my", "Re: [HEBAHAN JANM] Notis", None, "127.0.0.1",
     (250, "hebahan-tag-masuk")),
    # not registered
    ("x@anm.gov.my", "[HEBAHAN JANM] Notis", None, "127.0.0.1", (550, "hebahan-tag-palsu")),
    # SPF
    ("hebahan@anm.gov.my", "Notis", None, "127.0.0.9", (550, "hebahan-spf-gagal")),
    ("hebahan@rosak.gov.my", "[HEBAHAN JANM] Notis", None, "127.0.0.1",
     (550, "hebahan-spf-gagal")),
    ("hebahan@putus.gov.my", "[HEBAHAN JANM] Notis", None, "127.0.0.1",
     (451, "hebahan-spf-sementara")),
    # DMARC
    ("hebahan@anm.gov.my", "[HEBAHAN JANM] Notis", "hebahan@tiada-dmarc.gov.my", "127.0.0.1",
     (550, "hebahan-dmarc-gagal")),
    ("hebahan@tiada-dmarc.gov.my", "Notis", None, "127.0.0.1", (550, "hebahan-dmarc-gagal")),
    ("hebahan@lambat.gov.my", "[HEBAHAN JANM] Notis", None, "127.0.0.1",
     (451, "hebahan-dmarc-sementara")),
    # neither the tag nor a registered sender: the hebahan rules stay out of it
    ("pegawai@jpn.gov.my", "Notis", None, "127.0.0.9", (250, None)),
])
def test_inbound_decision_table(policy: PolicyState, mail_from: str, subject: str,
                                header_from: str | None, client_ip: str,
                                want: tuple[int, str | None]) -> None:
    got = run(policy, mail_from=mail_from, subject=subject, header_from=header_from,
              client_ip=client_ip)
    code, rule = want
    hits = [h.rule_id for h in got.verdict.hits]
    if code == 250:
        assert got.reply is None, (got.reply, hits)
        assert got.relay_bytes is not None
        assert (hits[-1] if hits else None) == rule, hits
        if rule is not None:
            assert MessageView(got.relay_bytes).subject.count("[HEBAHAN JANM]") == 1
            assert got.relay_bytes.startswith(b"Authentication-Results: ")
        else:
            assert got.verdict.auth is None
    else:
        assert got.reply is not None, hits
        assert (got.reply.code, got.verdict.rule_id) == (code, rule), hits
        assert got.reply.enhanced.startswith("5.7." if code == 550 else "4.7."), got.reply
        assert got.reply.lines[-1] == f"rule={rule} ref={got.ref}"


def test_dns_trouble_is_never_a_5xx_even_when_spf_also_fails(policy: PolicyState) -> None:
    # SPF fails for the client, DMARC's look-up times out: 451, not 550.
    got = run(policy, mail_from="hebahan@lambat.gov.my", subject="[HEBAHAN JANM] Notis",
              client_ip="127.0.0.9")
    assert got.reply is not None and got.reply.code == 451, got.verdict.hits
    assert got.verdict.rule_id == "hebahan-dmarc-sementara"


def test_outbound_needs_no_dns(policy: PolicyState, dns: DnsServer) -> None:
    before = len(dns.queries)
    got = run(policy, mail_from="hebahan@anm.gov.my", subject="Notis", direction="outbound")
    assert got.reply is None and got.relay_bytes is not None
    assert MessageView(got.relay_bytes).subject == "[HEBAHAN JANM] Notis"
    assert got.verdict.auth is None
    assert not got.relay_bytes.startswith(b"Authentication-Results")
    assert len(dns.queries) == before
