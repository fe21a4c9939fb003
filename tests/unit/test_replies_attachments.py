"""A refusal for unencrypted attachments names them, and a forwarded message (an attached
message/rfc822) is called what it is, with how to send its content instead. Through the
shipped rules and the real pipeline, as the proxy and the milter reply."""

from __future__ import annotations

from email.message import EmailMessage
from pathlib import Path

import pytest

from gateway.config import load_config
from gateway.envelope import Envelope
from gateway.pipeline import inspect
from gateway.policy import replies
from gateway.policy.verdict import Outcome, Reply, Verdict
from gateway.policy_state import PolicyState, load_policy_for

REPO = Path(__file__).resolve().parents[2]
DATA = Path(__file__).parent / "data"
ENV = Envelope(direction="outbound", listener="outbound", client_ip="127.0.0.1",
               helo="client.test", mail_from="a@anm.gov.my", rcpt_to=("b@jpn.gov.my",))


@pytest.fixture(scope="module")
def policy() -> PolicyState:
    config = load_config(REPO / "config" / "gateway.yaml")
    # Without clamd: the antivirus rules are tests/unit/test_antivirus.py's.
    return load_policy_for(config.model_copy(update={"rules_dir": REPO / config.rules_dir,
                                                     "antivirus": None}))


def forwarded_terhad(inner_name: str | None) -> bytes:
    inner = EmailMessage()
    inner["From"], inner["To"] = "a@anm.gov.my", "c@anm.gov.my"
    inner["Subject"] = "Minit mesyuarat"
    inner.set_content("Isi minit.\n")
    outer = EmailMessage()
    outer["From"], outer["To"] = "a@anm.gov.my", "b@jpn.gov.my"
    outer["Subject"] = "TERHAD: Fwd: Minit mesyuarat"
    outer.set_content("Untuk makluman.\n")
    outer.add_attachment(inner, filename=inner_name) if inner_name else outer.add_attachment(inner)
    return outer.as_bytes()


def refused(policy: PolicyState, raw: bytes) -> Reply:
    got = inspect(policy, raw, ENV, ref="R1")
    assert got.verdict.rule_id == "klasifikasi-lampiran-tidak-disulitkan", got.verdict.hits
    assert got.reply is not None
    return got.reply


@pytest.mark.parametrize("name", [None, "minit.eml"])
def test_forwarded_message_is_named_with_how_to_send_it(policy: PolicyState,
                                                         name: str | None) -> None:
    reply = refused(policy, forwarded_terhad(name))
    shown = f" ({name})" if name else ""
    assert reply.lines[2:] == (
        f"Mesej yang dimajukan{shown} tidak disulitkan: lampirkan dokumennya sendiri dalam "
        "bentuk disulitkan, bukan mesej yang dimajukan.",
        f"The forwarded message{shown} is not encrypted: attach the document itself, "
        "encrypted, instead of forwarding the message.",
        "rule=klasifikasi-lampiran-tidak-disulitkan ref=R1")
    # One reply, every line with its code (how the client sees it).
    text = replies.render(reply)
    assert all(line.startswith(("550-5.7.1 ", "550 5.7.1 ")) for line in text.split("\r\n"))


def test_plain_attachment_is_named(policy: PolicyState) -> None:
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = "a@anm.gov.my", "b@jpn.gov.my", "SULIT: Bajet"
    m.set_content("Dilampirkan.\n")
    m.add_attachment(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n", maintype="application", subtype="pdf",
                     filename="bajet-pindaan\u2019.pdf")
    reply = refused(policy, m.as_bytes())
    # ASCII only (not every client or MTA takes 8-bit reply text), still recognisable.
    assert reply.lines[2:4] == ("Lampiran tidak disulitkan: bajet-pindaan?.pdf.",
                                "Unencrypted attachment(s): bajet-pindaan?.pdf.")


def test_no_names_from_a_classified_rahsia_verdict() -> None:
    verdict = Verdict(outcome=Outcome.REJECT, reply=Reply(550, "5.7.1", ("ms", "en")),
                      rule_id="r", classification="RAHSIA",
                      evidence={"unencrypted": [{"name": "pelan.pdf",
                                                 "detected_type": "application/pdf"}]})
    reply = replies.for_verdict(verdict, "R")
    assert reply is not None and reply.lines == ("ms", "en", "rule=r ref=R")


def test_the_test_data_forwarded_sulit_message(policy: PolicyState) -> None:
    reply = refused(policy, (DATA / "forwarded-sulit.eml").read_bytes())
    assert any("The forwarded message (bajet.eml)" in line for line in reply.lines)
