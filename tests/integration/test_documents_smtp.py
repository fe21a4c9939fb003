"""Issue 10's documents through the running gateway: a real SMTP client, the proxy with
the SHIPPED rules, a real upstream. The files are the corpus' (LibreOffice's legacy
Office files, tests/corpus/make_outlook.py's TNEF streams), so what the corpus test
finds in the message view is also what an officer's mail client meets: a winmail.dat
holding AUTOEXEC.BAT is refused like the plain file, a Word 97 marking in an even-page
footer refuses the mail, a TNEF carrying only encrypted files is encrypted.
"""

from __future__ import annotations

import shutil
from email.message import EmailMessage
from pathlib import Path

from gateway.policy_state import load_policy
from gateway.service import Gateway

from .support import FakeUpstream, in_thread, write_config
from .test_smtp_proxy import send

REPO = Path(__file__).resolve().parents[2]
CASES = REPO / "tests" / "corpus" / "cases"
RCPTS = ("penerima@jpn.gov.my",)


def mail(subject: str, name: str, data: bytes, subtype: str = "octet-stream") -> bytes:
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = "pegawai@anm.gov.my", RCPTS[0], subject
    m["Message-ID"] = "<dokumen-smtp@anm.gov.my>"
    m.set_content("Sila lihat lampiran.")
    m.add_attachment(data, maintype="application", subtype=subtype, filename=name)
    return m.as_bytes().replace(b"\n", b"\r\n")


async def test_documents_of_every_kind_through_the_proxy(
        tmp_path: Path, upstream: FakeUpstream) -> None:
    shutil.copytree(REPO / "rules", tmp_path / "rules",
                    ignore=shutil.ignore_patterns("examples"), dirs_exist_ok=True)
    path = write_config(tmp_path, upstream=f"smtp://127.0.0.1:{upstream.port}",
                        rules="rules: []")
    gateway = Gateway(load_policy(path))
    await gateway.start()
    try:
        out = gateway.address("outbound")

        async def through(raw: bytes) -> tuple[int, bytes]:
            return await in_thread(lambda: send(out, raw, "pegawai@anm.gov.my", RCPTS))

        # AUTOEXEC.BAT inside winmail.dat is refused as the same file attached plainly.
        winmail = (CASES / "outlook" / "Autoexec-winmail.dat").read_bytes()
        plain = await through(mail("Skrip", "AUTOEXEC.BAT", b"@echo off\r\n"))
        inside = await through(mail("Skrip", "winmail.dat", winmail, "ms-tnef"))
        assert plain[0] == inside[0] == 550, (plain, inside)
        assert b"rule=perisian-hasad-boleh-laku" in plain[1]
        assert b"rule=perisian-hasad-boleh-laku" in inside[1]
        # A Word 97 file whose only marking is its even-page footer (RAHSIA BESAR).
        even = (CASES / "office" / "legacy" / "Minit-even-footer.doc").read_bytes()
        code, text = await through(mail("Minit mesyuarat", "Minit.doc", even))
        assert code == 550 and b"rule=klasifikasi-rahsia" in text, text
        # A SULIT TNEF whose only file is AES-encrypted is encrypted: relayed.
        locked = (CASES / "outlook" / "Berkata-laluan-winmail.dat").read_bytes()
        code, text = await through(mail("SULIT Bajet 2026", "winmail.dat", locked, "ms-tnef"))
        assert code == 250, text
        assert len(upstream.messages) == 1
    finally:
        await gateway.stop(drain_timeout=1.0)
