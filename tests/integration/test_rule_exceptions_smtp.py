"""Exceptions that stay narrow, through the running gateway (issue 14 item 3): a real
SMTP client, the proxy, its inspection processes and a real upstream.

A partner is exempt from the size rule by a top-level exception: its large attachment
is relayed and the log names the exception; the same partner's program (this
machine's /bin/true) is still refused by the executable rule the exception does not
name, and that record names the exception too. Once the exception has expired the
partner's large attachment is refused like anyone's.
"""

from __future__ import annotations

import os
from email.message import EmailMessage
from pathlib import Path

from .support import FakeUpstream, GatewayFactory, in_thread
from .test_smtp_proxy import send

PARTNER = "rakan@syarikat.com.my"
OFFICER = "pegawai@anm.gov.my"

RULES = """
rules:
  - id: saiz-lampiran-1kb
    reference: "PPPA Bil. 3 Tahun 2025, Lampiran A, 3.1.4(d)-(e)"
    when: {attachment_size_over: 1KB}
    action: reject
    reply: {code: 552, enhanced: "5.3.4", text: {ms: "Lampiran terlalu besar.",
            en: "Attachment too large."}}
  - id: perisian-hasad-boleh-laku
    reference: "PPPA Bil. 3 Tahun 2025, Lampiran A, 3.2.2(a)(ii)(g)"
    when: {attachment_type: [executable]}
    action: reject
    reply: {code: 550, enhanced: "5.7.1", text: {ms: "Fail boleh laku tidak dibenarkan.",
            en: "Executable files are not allowed."}}
exceptions:
  - id: rakan-kongsi-saiz
    rules: [saiz-lampiran-1kb]
    when: {sender_in: [rakan@syarikat.com.my]}
    reason: "Pelan projek MyDigital; diluluskan ICTSO"
    expires: EXPIRES
"""


def mail(sender: str, attachment: bytes, name: str) -> bytes:
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = sender, OFFICER, "Pelan projek"
    m["Message-ID"] = f"<{name}@syarikat.com.my>"
    m.set_content("Sila lihat lampiran.")
    m.add_attachment(attachment, maintype="application", subtype="octet-stream",
                     filename=name)
    return m.as_bytes().replace(b"\n", b"\r\n")


BIG = os.urandom(16 * 1024)
EXE = Path("/bin/true").read_bytes()
SIZE_EXCEPTION = {"rule_id": "saiz-lampiran-1kb", "kind": "exception",
                  "exception_id": "rakan-kongsi-saiz",
                  "reason": "Pelan projek MyDigital; diluluskan ICTSO",
                  "expires": "2999-12-31"}


async def test_partner_exempt_from_size_is_still_refused_a_program(
        make_gateway: GatewayFactory, upstream: FakeUpstream) -> None:
    gw = await make_gateway(upstream=f"smtp://127.0.0.1:{upstream.port}",
                            rules=RULES.replace("EXPIRES", "2999-12-31"))
    # Anyone else: the size rule refuses.
    code, text = await in_thread(lambda: send(gw.inbound, mail("x@example.org", BIG, "a.bin"),
                                              sender="x@example.org", rcpts=(OFFICER,)))
    assert code == 552 and b"rule=saiz-lampiran-1kb" in text, text
    # The partner: exempt from the size rule, relayed.
    code, text = await in_thread(lambda: send(gw.inbound, mail(PARTNER, BIG, "pelan.bin"),
                                              sender=PARTNER, rcpts=(OFFICER,)))
    assert code == 250, text
    assert len(upstream.messages) == 1 and upstream.messages[0].mail_from == PARTNER
    # The partner's program: over 1KB too, but the executable rule is not named.
    code, text = await in_thread(lambda: send(gw.inbound, mail(PARTNER, EXE, "pelan.exe"),
                                              sender=PARTNER, rcpts=(OFFICER,)))
    assert code == 550 and b"rule=perisian-hasad-boleh-laku" in text, text
    assert len(upstream.messages) == 1
    records = gw.records()
    assert [(r["event"], r["rule_id"]) for r in records] == [
        ("reject", "saiz-lampiran-1kb"), ("exempt", "saiz-lampiran-1kb"),
        ("reject", "perisian-hasad-boleh-laku")]
    assert records[0]["exceptions"] == []
    assert records[1]["exceptions"] == [SIZE_EXCEPTION]
    assert records[1]["reason"] == SIZE_EXCEPTION["reason"]
    assert records[1]["reference"] == "PPPA Bil. 3 Tahun 2025, Lampiran A, 3.1.4(d)-(e)"
    assert records[1]["smtp_code"] == 250
    assert records[2]["exceptions"] == [SIZE_EXCEPTION]
    assert [m["rule_id"] for m in records[2]["matched"]] == ["perisian-hasad-boleh-laku"]


async def test_an_expired_exception_no_longer_applies(
        make_gateway: GatewayFactory, upstream: FakeUpstream) -> None:
    gw = await make_gateway(upstream=f"smtp://127.0.0.1:{upstream.port}",
                            rules=RULES.replace("EXPIRES", "2001-01-01"))
    code, text = await in_thread(lambda: send(gw.inbound, mail(PARTNER, BIG, "pelan.bin"),
                                              sender=PARTNER, rcpts=(OFFICER,)))
    assert code == 552 and b"rule=saiz-lampiran-1kb" in text, text
    assert upstream.messages == []
    assert gw.records()[0]["exceptions"] == []
