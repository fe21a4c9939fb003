"""`password_in_message` and `weak_encryption` on messages with real encrypted attachments
(tests/support/encrypted_files.py: 7-Zip, pyzipper, pypdf, msoffcrypto-tool, and files
Microsoft Office made), the password in the same message in each form, and without.
The shipped rules (rules/20-klasifikasi.yaml) through `inspect` and `gateway check`."""

from __future__ import annotations

import email.policy
import json
import shutil
import subprocess
import sys
from email.message import EmailMessage
from pathlib import Path

import pytest
import yaml

from gateway.config import load_config
from gateway.envelope import Envelope
from gateway.message import unlock
from gateway.message.documents import Bounds
from gateway.message.view import MessageView, NotInspectable
from gateway.pipeline import inspect
from gateway.policy.checks import REGISTRY
from gateway.policy.checks.base import Context, Evidence
from gateway.policy_state import PolicyState, load_policy_for
from tests.support import encrypted_files as ef

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "Rahsia#2025x"
OUTBOUND = Envelope(direction="outbound", listener="t", client_ip="127.0.0.1", helo="x",
                    mail_from="pegawai@anm.gov.my", rcpt_to=("rakan@jpm.gov.my",))
needs_7z = pytest.mark.skipif(ef.SEVEN_ZIP is None, reason="7-Zip (apt 7zip) not installed")


def mail(*files: tuple[str, bytes], subject: str = "TERHAD: Laporan",
         body: str = "Tuan,\n\nSila lihat lampiran.\n", html: str | None = None,
         text_files: tuple[tuple[str, str], ...] = (), forwarded: bytes | None = None
         ) -> bytes:
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = "pegawai@anm.gov.my", "rakan@jpm.gov.my", subject
    m.set_content(body)
    if html is not None:
        m.add_alternative(html, subtype="html")
    for name, data in files:
        m.add_attachment(data, maintype="application", subtype="octet-stream", filename=name)
    for name, text in text_files:
        m.add_attachment(text, filename=name)
    if forwarded is not None:
        m.add_attachment(forwarded, maintype="message", subtype="rfc822")
    return m.as_bytes(policy=email.policy.SMTP)


def run(name: str, want: object, raw: bytes) -> Evidence | None:
    check = REGISTRY[name]
    return check.evaluate(check.validate(want), Context(MessageView(raw), OUTBOUND, ()))


# -- where the password stands -------------------------------------------------------------

FORMS = [f"Kata laluan: {PASSWORD}", f"Katalaluan = {PASSWORD}", f"Password: {PASSWORD}",
         f"pwd {PASSWORD}", f"kata laluan fail ini ialah {PASSWORD}",
         f"KATA LALUAN : {PASSWORD}", f"password: {PASSWORD}."]


@pytest.mark.parametrize("form", FORMS)
def test_each_form_in_the_body_opens_an_aes_zip(form: str) -> None:
    raw = mail(("laporan.zip", ef.zip_aes(PASSWORD)), body=f"Tuan,\n\n{form}\n\nSekian.\n")
    evidence = run("password_in_message", True, raw)
    assert evidence is not None
    [opened] = evidence["opened"]
    assert opened == {"index": 0, "name": "laporan.zip", "scheme": "aes",
                      "found": {"in": "body"}}
    assert PASSWORD not in json.dumps(evidence)
    assert run("password_in_message", False, raw) is None


@pytest.mark.parametrize("form", FORMS)
def test_each_form_in_the_subject(form: str) -> None:
    raw = mail(("laporan.zip", ef.zip_aes(PASSWORD)), subject=f"TERHAD: Laporan ({form})")
    evidence = run("password_in_message", True, raw)
    assert evidence is not None and evidence["opened"][0]["found"] == {"in": "subject"}


@pytest.mark.parametrize("form", FORMS)
def test_each_form_in_a_forwarded_message(form: str) -> None:
    inner = mail(subject="Fwd: laporan", body=f"Dari: ketua\n{form}\n")
    raw = mail(("laporan.zip", ef.zip_aes(PASSWORD)), forwarded=inner)
    evidence = run("password_in_message", True, raw)
    assert evidence is not None
    assert evidence["opened"][0]["found"] == {"in": "forwarded:1:body"}


@pytest.mark.parametrize("form", FORMS)
def test_each_form_in_a_text_attachment(form: str) -> None:
    raw = mail(("laporan.zip", ef.zip_aes(PASSWORD)),
               text_files=(("nota.txt", f"Untuk tuan:\n{form}\n"),))
    evidence = run("password_in_message", True, raw)
    assert evidence is not None
    assert evidence["opened"][0]["found"] == {"in": "attachment", "name": "nota.txt"}


def test_in_the_html_body_and_in_a_forwarded_subject() -> None:
    raw = mail(("laporan.zip", ef.zip_aes(PASSWORD)),
               html=f"<p>Tuan,</p><p><b>Kata laluan:</b> {PASSWORD}</p>")
    evidence = run("password_in_message", True, raw)
    assert evidence is not None
    assert evidence["opened"][0]["found"]["in"] in ("body", "body:html")
    inner = mail(subject=f"Kata laluan: {PASSWORD}")
    evidence = run("password_in_message", True,
                   mail(("laporan.zip", ef.zip_aes(PASSWORD)), forwarded=inner))
    assert evidence is not None
    assert evidence["opened"][0]["found"] == {"in": "forwarded:1:subject"}


def test_in_an_html_block_shown_in_capitals_the_typed_password_opens() -> None:
    # The marking scan reads the HTML as shown (KATA LALUAN: RAHSIA#2025X); the
    # password is what was typed. Only the HTML part carries it.
    html = (f'<p>Tuan,</p><p style="text-transform: uppercase">Kata laluan: {PASSWORD}'
            "</p>")
    raw = mail(("laporan.zip", ef.zip_aes(PASSWORD)), body="Tuan,\n\nSila lihat.\n",
               html=html)
    view = MessageView(raw)
    [part] = [p for p in view.text_parts if p.where == "body:html"]
    assert PASSWORD.upper() in part.text and part.typed is not None
    evidence = run("password_in_message", True, raw)
    assert evidence is not None
    assert evidence["opened"][0]["found"] == {"in": "body:html"}
    assert PASSWORD not in json.dumps(evidence) and PASSWORD in view.secret_values


def test_in_a_file_name_the_name_is_masked_in_the_evidence() -> None:
    raw = mail(("laporan.zip", ef.zip_aes(PASSWORD)),
               text_files=((f"kata laluan: {PASSWORD}.txt", "Lihat nama fail."),))
    evidence = run("password_in_message", True, raw)
    assert evidence is not None
    assert evidence["opened"][0]["found"]["in"] == "attachment_name"
    assert PASSWORD not in json.dumps(evidence)


# -- without the password ------------------------------------------------------------------

@pytest.mark.parametrize("body", [
    "Tuan,\n\nKata laluan akan dihantar melalui SMS.\n",
    "Tuan,\n\nKata laluan: SalahSekali1\n",  # a candidate that opens nothing
    "Tuan,\n\nSila lihat lampiran.\n",
])
def test_without_the_password_nothing_holds(body: str) -> None:
    raw = mail(("laporan.zip", ef.zip_aes(PASSWORD)), body=body)
    assert run("password_in_message", True, raw) is None
    evidence = run("password_in_message", False, raw)
    assert evidence is not None and evidence["encrypted"] == 1


def test_a_password_beside_no_encrypted_attachment_is_not_the_condition() -> None:
    raw = mail(("nota.txt", b"plain"), body=f"Kata laluan: {PASSWORD}\n")
    assert run("password_in_message", True, raw) is None


# -- every format -----------------------------------------------------------------------------

@needs_7z
@pytest.mark.parametrize("method", ["ZipCrypto", "AES128", "AES256"])
def test_zip_made_by_7zip(method: str) -> None:
    data = ef.seven_zip(PASSWORD, kind="zip", method=method)
    evidence = run("password_in_message", True,
                   mail(("laporan.zip", data), body=f"Password: {PASSWORD}"))
    assert evidence is not None
    assert evidence["opened"][0]["scheme"] == ("zipcrypto" if method == "ZipCrypto" else "aes")
    wrong = mail(("laporan.zip", data), body="Password: Bukan1234")
    assert run("password_in_message", True, wrong) is None


@pytest.mark.parametrize("algorithm", ["RC4-40", "RC4-128", "AES-128", "AES-256"])
def test_pdf_made_by_pypdf(algorithm: str) -> None:
    data = ef.pdf(PASSWORD, algorithm)
    evidence = run("password_in_message", True,
                   mail(("laporan.pdf", data), body=f"Katalaluan = {PASSWORD}"))
    assert evidence is not None
    assert evidence["opened"][0]["scheme"] == ("pdf-rc4" if "RC4" in algorithm else "pdf-aes")
    assert run("password_in_message", True,
               mail(("laporan.pdf", data), body="Katalaluan = Bukan1234")) is None


@pytest.mark.parametrize(("name", "data", "password", "scheme"), [
    ("agile.docx", ef.docx_agile(PASSWORD), PASSWORD, "aes"),
    ("standard.docx", ef.fixture("ecma376standard_password.docx"), ef.FIXTURE_PASSWORD, "aes"),
    ("rc4.doc", ef.fixture("rc4cryptoapi_password.doc"), ef.FIXTURE_PASSWORD, "rc4"),
    ("rc4.xls", ef.fixture("rc4cryptoapi_password.xls"), ef.FIXTURE_PASSWORD, "rc4"),
    ("rc4.ppt", ef.fixture("rc4cryptoapi_password.ppt"), ef.FIXTURE_PASSWORD, "rc4"),
    ("xor.xls", ef.fixture("xor_password_123456789012345.xls"), ef.XOR_PASSWORD, "xor"),
])
def test_office_files(name: str, data: bytes, password: str, scheme: str) -> None:
    evidence = run("password_in_message", True,
                   mail((name, data), body=f"kata laluan fail ini ialah {password}"))
    assert evidence is not None
    assert evidence["opened"] == [{"index": 0, "name": name, "scheme": scheme,
                                   "found": {"in": "body"}}]
    assert run("password_in_message", True,
               mail((name, data), body="kata laluan fail ini ialah Bukan1234")) is None


@needs_7z
def test_7z_is_not_tried_and_says_so() -> None:
    data = ef.seven_zip(PASSWORD, kind="7z")
    raw = mail(("laporan.7z", data), ("laporan.zip", ef.zip_aes(PASSWORD)),
               body=f"pwd {PASSWORD}")
    evidence = run("password_in_message", True, raw)
    assert evidence is not None
    assert [o["name"] for o in evidence["opened"]] == ["laporan.zip"]
    assert evidence["untried"] == [{"index": 0, "name": "laporan.7z", "scheme": "aes",
                                    "reason": "7z"}]


# -- bounds -----------------------------------------------------------------------------------

def test_more_candidates_than_the_bound_is_not_inspectable() -> None:
    lines = "\n".join(f"Kata laluan: calon{i}" for i in range(unlock.MAX_CANDIDATES + 1))
    raw = mail(("laporan.zip", ef.zip_aes(PASSWORD)), body=lines)
    with pytest.raises(NotInspectable, match="more than 20 password candidates"):
        run("password_in_message", True, raw)
    lines = "\n".join(f"Kata laluan: calon{i}" for i in range(unlock.MAX_CANDIDATES))
    assert run("password_in_message", True,
               mail(("laporan.zip", ef.zip_aes(PASSWORD)), body=lines)) is None


def test_the_message_deadline_bounds_the_tries() -> None:
    view = MessageView(mail(("laporan.zip", ef.zip_aes(PASSWORD)),
                            body=f"Kata laluan: {PASSWORD}"))
    with pytest.raises(Exception, match="took too long"):
        unlock.trial(view, Bounds(view.limits, view.budget, seconds=-1.0))


# -- weak_encryption --------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "make", "scheme", "cipher", "weak"), [
    ("a.zip", lambda: ef.zip_aes("x1"), "aes", "AES-256", False),
    ("b.pdf", lambda: ef.pdf("x1", "RC4-40"), "pdf-rc4", "RC4-40", True),
    ("c.pdf", lambda: ef.pdf("x1", "AES-128"), "pdf-aes", "AES-128", False),
    ("d.docx", lambda: ef.docx_agile("x1"), "aes", "AES-256", False),
    ("e.docx", lambda: ef.fixture("ecma376standard_password.docx"), "aes", "AES-128", False),
    ("f.doc", lambda: ef.fixture("rc4cryptoapi_password.doc"), "rc4", None, True),
    ("g.xls", lambda: ef.fixture("xor_password_123456789012345.xls"), "xor", None, True),
])
def test_weak_encryption_per_scheme(name: str, make: object, scheme: str, cipher: str | None,
                                    weak: bool) -> None:
    assert callable(make)
    raw = mail((name, make()))
    evidence = run("weak_encryption", weak, raw)
    assert evidence is not None
    assert evidence["encrypted"] == [{"index": 0, "name": name, "scheme": scheme,
                                      "cipher": cipher, "weak": weak}]
    assert run("weak_encryption", not weak, raw) is None


@needs_7z
def test_zipcrypto_is_weak_and_listed_first() -> None:
    raw = mail(("kuat.zip", ef.seven_zip("x1", kind="zip", method="AES256")),
               ("lemah.zip", ef.seven_zip("x1", kind="zip", method="ZipCrypto")))
    evidence = run("weak_encryption", True, raw)
    assert evidence is not None and evidence["weak"] == 1
    assert [(e["name"], e["scheme"], e["cipher"]) for e in evidence["encrypted"]] == [
        ("lemah.zip", "zipcrypto", None), ("kuat.zip", "aes", "AES-256")]


# -- the shipped rules ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def shipped() -> PolicyState:
    """The shipped config and rules; no clamd (tests never use the system's)."""
    config = load_config(REPO / "config" / "gateway.yaml")
    return load_policy_for(config.model_copy(update={"rules_dir": REPO / "rules",
                                                     "antivirus": None}))


def shipped_config(tmp_path: Path) -> Path:
    """The shipped config for `gateway check`, without clamd, logging under tmp_path."""
    config = yaml.safe_load((REPO / "config" / "gateway.yaml").read_text())
    config.pop("antivirus", None)
    config["rules_dir"] = str(REPO / "rules")
    config["rejection_log"] = str(tmp_path / "rejections.jsonl")
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.parametrize("marking", ["TERHAD", "SULIT"])
def test_shipped_rule_refuses_marked_mail_with_its_password(shipped: PolicyState,
                                                            marking: str) -> None:
    raw = mail(("laporan.zip", ef.zip_aes(PASSWORD)), subject=f"{marking}: Laporan",
               body=f"Kata laluan: {PASSWORD}\n")
    result = inspect(shipped, raw, OUTBOUND)
    assert result.verdict.rule_id == "klasifikasi-kata-laluan-bersama"
    assert result.reply is not None and (result.reply.code, result.reply.enhanced) == (
        550, "5.7.1")
    text = " ".join(result.reply.lines)
    assert "saluran berasingan" in text and "separate channel" in text
    assert PASSWORD not in text
    assert "3.2.2(a)(ii)(d)" in (result.verdict.reference or "")
    assert "Kelantan 5.3" in (result.verdict.reference or "")


def test_shipped_rules_pass_marked_mail_without_the_password_and_unmarked_mail(
        shipped: PolicyState) -> None:
    without = mail(("laporan.zip", ef.zip_aes(PASSWORD)),
                   body="Kata laluan akan dihantar melalui SMS.\n")
    assert inspect(shipped, without, OUTBOUND).reply is None
    unmarked = mail(("laporan.zip", ef.zip_aes(PASSWORD)), subject="Laporan",
                    body=f"Kata laluan: {PASSWORD}\n")
    assert inspect(shipped, unmarked, OUTBOUND).reply is None


def test_shipped_weak_encryption_rule_is_monitor_only(shipped: PolicyState) -> None:
    raw = mail(("rc4.doc", ef.fixture("rc4cryptoapi_password.doc")),
               subject="SULIT: Minit")
    result = inspect(shipped, raw, OUTBOUND)
    assert result.reply is None
    [hit] = [h for h in result.verdict.hits if h.rule_id == "klasifikasi-penyulitan-lemah"]
    assert hit.mode == "monitor"
    assert hit.evidence["encrypted"][0]["scheme"] == "rc4"


def test_gateway_check_json_never_prints_the_password(tmp_path: Path) -> None:
    subject_pw, body_pw = "SubjekRahsia77", PASSWORD
    raw = mail(("laporan.zip", ef.zip_aes(subject_pw)),
               ("laporan2.zip", ef.zip_aes(body_pw)),
               subject=f"Laporan, kata laluan: {subject_pw}",  # unmarked: subject shown
               body=f"TERHAD\n\nPassword: {body_pw}\n",
               text_files=((f"pwd {body_pw}.txt", "nama fail"),))
    eml = tmp_path / "m.eml"
    eml.write_bytes(raw)
    gateway = shutil.which("gateway", path=str(Path(sys.executable).parent))
    assert gateway is not None
    config = shipped_config(tmp_path)
    out = subprocess.run([gateway, "check", "--json", "--config", str(config), str(eml)],
                         capture_output=True, text=True, timeout=120, cwd=REPO)
    result = json.loads(out.stdout)
    # The text attachment is plain: the unencrypted-attachment rule refuses first, and
    # its reply and evidence name that file, whose name holds a password: masked.
    assert result["rule_id"] == "klasifikasi-lampiran-tidak-disulitkan", out.stdout
    assert "pwd ********" in result["text"]
    assert subject_pw not in out.stdout + out.stderr
    assert body_pw not in out.stdout + out.stderr
    human = subprocess.run([gateway, "check", "--config", str(config), str(eml)],
                           capture_output=True, text=True, timeout=120, cwd=REPO)
    assert "klasifikasi-lampiran-tidak-disulitkan" in human.stdout
    assert subject_pw not in human.stdout + human.stderr
    assert body_pw not in human.stdout + human.stderr


def test_gateway_check_names_where_but_never_the_password(tmp_path: Path) -> None:
    raw = mail(("laporan.zip", ef.zip_aes(PASSWORD)),
               subject=f"Laporan, kata laluan: {PASSWORD}", body="TERHAD\n\nLampiran.\n")
    eml = tmp_path / "m.eml"
    eml.write_bytes(raw)
    gateway = shutil.which("gateway", path=str(Path(sys.executable).parent))
    assert gateway is not None
    out = subprocess.run([gateway, "check", "--json", "--config", str(shipped_config(tmp_path)),
                          str(eml)], capture_output=True, text=True, timeout=120, cwd=REPO)
    result = json.loads(out.stdout)
    assert result["rule_id"] == "klasifikasi-kata-laluan-bersama", out.stdout
    [hit] = [m for m in result["matched"] if m["rule_id"] == result["rule_id"]]
    assert hit["evidence"]["opened"][0]["found"] == {"in": "subject"}
    assert result["subject"] == "Laporan, kata laluan: ********"
    assert PASSWORD not in out.stdout + out.stderr
