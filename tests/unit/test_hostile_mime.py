"""Hostile MIME fails closed: defects are named facts, limits come from config, policy decides.

Every hostile input of issue 3 item 4 (zip bombs aside: tests of the archive
reader) is here at least once; tests/corpus/cases/mime/ runs the same tricks
through the shipped rules.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from gateway.config import load_config
from gateway.envelope import Envelope
from gateway.message import defects, mime
from gateway.message.limits import DEFAULT_LIMITS, ExpansionBudget, InspectionLimits
from gateway.message.view import MessageView, NotInspectable
from gateway.pipeline import inspect
from gateway.policy.checks import REGISTRY
from gateway.policy.checks.base import Context, Evidence
from gateway.policy.verdict import Outcome
from gateway.policy_state import PolicyState, load_policy_for
from gateway.problems import LoadError

REPO = Path(__file__).resolve().parents[2]
ENV = Envelope(direction="inbound", listener="t", client_ip="127.0.0.1", helo="h",
               mail_from="luar@example.org", rcpt_to=("pegawai@anm.gov.my",))
PE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + b"\x00" * 200


def multipart(*parts: bytes, ctype: bytes = b'multipart/mixed; boundary="b"',
              close: bool = True) -> bytes:
    out = b"From: a@anm.gov.my\r\nSubject: s\r\nContent-Type: " + ctype + b"\r\n\r\n"
    for part in parts:
        out += b"--b\r\n" + part + b"\r\n"
    return out + (b"--b--\r\n" if close else b"")


def run(name: str, value: Any, view: MessageView) -> Evidence | None:
    check = REGISTRY[name]
    return check.evaluate(check.validate(value), Context(view, ENV, ("anm.gov.my",)))


@pytest.fixture(scope="module")
def shipped() -> PolicyState:
    config = load_config(REPO / "config" / "gateway.yaml")
    # Without clamd: the antivirus rules are tests/unit/test_antivirus.py's.
    return load_policy_for(config.model_copy(update={"rules_dir": REPO / config.rules_dir,
                                                     "antivirus": None}))


# -- each hostile input is a named defect ----------------------------------------------

@pytest.mark.parametrize(("raw", "kind"), [
    (multipart(b"Content-Type: text/plain\r\n\r\nx",
               ctype=b'multipart/mixed; boundary="b"; boundary="c"'), "duplicate_boundary"),
    (multipart(b"Content-Type: text/plain\r\n\r\nx",
               ctype=b'multipart/mixed; BOUNDARY=b; boundary*=c'), "duplicate_boundary"),
    (multipart(b"Content-Type: text/plain\r\nContent-Type: application/x-msdownload\r\n\r\nx"),
     "duplicate_content_type"),
    (multipart(b"Content-Transfer-Encoding: 7bit\r\nContent-Transfer-Encoding: base64\r\n\r\nx"),
     "duplicate_transfer_encoding"),
    (multipart(b"Content-Disposition: inline\r\nContent-Disposition: attachment\r\n\r\nx"),
     "duplicate_content_disposition"),
    (b"Content-Type: multipart/mixed\r\n\r\nx\r\n", "missing_boundary"),
    (b"Content-Type: multipart/mixed; boundary=q\r\n\r\nno parts\r\n", "missing_boundary"),
    (multipart(b"Content-Type: text/plain\r\n\r\nx", close=False), "unterminated_multipart"),
    (multipart(b"Content-Disposition: attachment; filename=a.pdf; filename*=utf-8''a.exe"
               b"\r\n\r\nx"), "conflicting_filenames"),
    (multipart(b'Content-Type: image/png; name="a.png"\r\n'
               b'Content-Disposition: attachment; filename="a.png.js"\r\n\r\nx'),
     "conflicting_filenames"),
    (multipart("Content-Disposition: attachment; filename=\"a\u202efdp.exe\"\r\n\r\nx"
               .encode()), "bidi_in_filename"),
    (multipart(b"Content-Type: application/octet-stream; name=a\r\n"
               b"Content-Transfer-Encoding: base64\r\n\r\nTV!!qQ=="), "bad_base64"),
    (multipart(b"Content-Type: application/octet-stream; name=a\r\n"
               b"Content-Transfer-Encoding: base64\r\n\r\nTVo=TVo="), "bad_base64"),
    ("Subject: café\r\n\r\nx".encode(), "eight_bit_header"),
    (b"Subject: caf\xe9\r\n\r\nx", "non_utf8_header"),
    (b"Subject: s\r\n" + b"X-A: " + b"a" * 300_000 + b"\r\n\r\nx", "header_too_large"),
])
def test_hostile_input_is_a_named_defect(raw: bytes, kind: str) -> None:
    view = MessageView(raw)
    assert kind in view.structure_defects
    assert set(view.structure_defects) <= set(defects.KINDS)
    assert run("mime_defect", [kind], view) is not None
    # Nothing raises on the way to every fact the checks read.
    _ = (view.subject, view.text_parts, view.links, view.markings, view.identity,
         [a.as_dict() for a in view.attachments])


def test_clean_message_has_no_defects() -> None:
    raw = multipart(b"Content-Type: text/plain; charset=utf-8\r\n\r\nSalam.",
                    b'Content-Type: application/pdf; name="a.pdf"\r\n'
                    b'Content-Disposition: attachment; filename="a.pdf"\r\n'
                    b"Content-Transfer-Encoding: base64\r\n\r\n"
                    + base64.b64encode(b"%PDF-1.4\n%%EOF\n"))
    view = MessageView(raw)
    assert view.structure_defects == ()
    assert run("mime_defect", list(defects.KINDS), view) is None
    assert view.attachments[0].filenames == ("a.pdf",)


def test_malformed_base64_decodes_as_mail_clients_do() -> None:
    """`TV!!qQ`: the `!` are dropped, the bytes are `MZ`, the executable check sees a program."""
    encoded = base64.b64encode(PE).replace(b"TVqQ", b"TV!!qQ", 1)
    raw = multipart(b'Content-Type: application/pdf; name="a.pdf"\r\n'
                    b"Content-Transfer-Encoding: base64\r\n\r\n" + encoded)
    (att,) = MessageView(raw).attachments
    assert att.data().startswith(b"MZ\x90")
    assert att.category == "executable"
    assert att.encrypted is None  # damaged transfer encoding: could not inspect


def test_every_name_variant_counts_for_the_executable_test() -> None:
    # A text file shown as nota.txt by one client and saved as nota.txt.vbs by another.
    raw = multipart(b'Content-Type: text/plain; name="nota.txt"\r\n'
                    b"Content-Disposition: attachment; filename*=utf-8''nota.txt.vbs"
                    b"\r\n\r\nMsgBox 1")
    (att,) = MessageView(raw).attachments
    assert set(att.filenames) == {"nota.txt", "nota.txt.vbs"}
    assert att.category == "executable"
    assert run("attachment_name_matches", r"\.vbs$", MessageView(raw)) is not None


def test_name_variants_rfc2231_continuations_and_repeated_headers() -> None:
    part = mime.filenames
    import email
    msg = email.message_from_bytes(
        b"Content-Type: application/octet-stream; name=\"=?utf-8?Q?SULIT_a.txt?=\"\r\n"
        b"Content-Disposition: attachment; filename*0*=utf-8''TER; filename*1*=HAD%20b.txt\r\n"
        b"Content-Disposition: attachment; filename=\"c.txt\"\r\n\r\nx")
    assert set(part(msg)) == {"SULIT a.txt", "TERHAD b.txt", "c.txt"}


def test_bidi_name_is_folded_for_matching() -> None:
    raw = multipart("Content-Disposition: attachment; filename=\"laporan\u202efdp.exe\"\r\n"
                    "\r\nisi nota\r\n".encode())
    view = MessageView(raw)
    assert run("attachment_name_matches", r"laporanfdp\.exe$", view) is not None
    assert view.attachments[0].category == "executable"


# -- limits: config -> view -> checks -----------------------------------------------------

def _parts(n: int) -> bytes:
    return multipart(*[b"Content-Type: text/plain\r\n\r\nx"] * n)


def _deep(n: int) -> bytes:
    raw = b"Subject: s\r\n"
    for i in range(n):
        raw += b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i)
    return raw + b"Content-Type: text/plain\r\n\r\nhi\r\n"


@pytest.mark.parametrize(("limits", "raw", "kind"), [
    (InspectionLimits(max_parts=20), _parts(30), "too_many_parts"),
    (InspectionLimits(max_parts=20), _parts(3000), "too_many_parts"),  # refused before parsing
    (InspectionLimits(max_depth=5), _deep(8), "too_deep"),
    (InspectionLimits(max_header_bytes=2048), b"X-A: " + b"a" * 3000 + b"\r\n\r\nx",
     "header_too_large"),
    (InspectionLimits(max_header_bytes=2048),
     multipart(b"X-A: " + b"a" * 3000 + b"\r\n\r\nx"), "header_too_large"),
    (InspectionLimits(max_expansion_bytes=1000),
     multipart(b"Content-Type: application/octet-stream\r\n\r\n" + b"x" * 2000),
     "expansion_too_large"),
])
def test_beyond_a_limit_is_incomplete(limits: InspectionLimits, raw: bytes, kind: str) -> None:
    view = MessageView(raw, limits=limits)
    assert view.limits is limits
    assert view.complete is False
    assert kind in view.structure_defects
    ev = run("inspection_incomplete", True, view)
    assert ev is not None and kind in ev["limits"]
    assert run("inspection_incomplete", False, view) is None
    with pytest.raises(NotInspectable):
        view.require_complete()
    # Within the default limits the same message is whole (but for the 3000-part one).
    if kind != "too_many_parts":
        assert MessageView(raw).complete is True


def test_enclosed_messages_count_once_per_level_against_expansion() -> None:
    inner = b"Subject: x\r\n\r\n" + b"y" * 1000 + b"\r\n"
    for _ in range(5):
        inner = b"Content-Type: message/rfc822\r\n\r\n" + inner
    view = MessageView(inner)
    assert 5000 <= view.structure.expansion < 7000
    assert MessageView(inner, limits=InspectionLimits(max_expansion_bytes=4000)).complete is False


def test_expansion_budget_spent_later_makes_the_view_incomplete() -> None:
    view = MessageView(multipart(b"Content-Type: text/plain\r\n\r\nx"),
                       limits=InspectionLimits(max_expansion_bytes=10_000))
    assert view.complete
    assert view.attachments == () or view.attachments[0].budget is view.budget
    assert view.budget.charge(5_000) is True
    assert view.budget.charge(6_000) is False  # an archive unpacking past the limit
    assert view.complete is False
    assert "expansion_too_large" in view.structure_defects
    assert ExpansionBudget(5).remaining == 5


def test_config_limits_reach_the_view(tmp_path: Path) -> None:
    config = load_config(REPO / "config" / "gateway.yaml")
    assert config.limits.inspection() == DEFAULT_LIMITS
    text = (REPO / "config" / "gateway.yaml").read_text() + (
        "limits:\n  max_header_bytes: 64KB\n  max_parts: 100\n  max_depth: 10\n"
        "  max_expansion_bytes: 50MB\n  max_archive_entries: 500\n  max_archive_depth: 2\n"
        "  max_archive_ratio: 50\n")
    path = tmp_path / "gateway.yaml"
    path.write_text(text)
    got = load_config(path).limits.inspection()
    assert got == InspectionLimits(65536, 100, 10, 50 * 1024 * 1024, 500, 2, 50)
    path.write_text(text.replace("max_parts: 100", "max_parts: 0"))
    with pytest.raises(LoadError) as info:
        load_config(path)
    assert "limits.max_parts" in str(info.value.problems[0])


def test_pipeline_passes_config_limits_and_tempfails_beyond_them(shipped: PolicyState) -> None:
    small = load_policy_for(shipped.config.model_copy(update={
        "limits": shipped.config.limits.model_copy(update={"max_parts": 20})}))
    raw = _parts(30)
    got = inspect(small, raw, ENV)
    assert got.view.limits.max_parts == 20
    # The shipped rules reject it by policy (struktur-melebihi-had), before any other rule.
    assert (got.verdict.outcome, got.verdict.rule_id) == (Outcome.REJECT, "struktur-melebihi-had")
    assert got.reply is not None and (got.reply.code, got.reply.enhanced) == (554, "5.6.0")
    assert inspect(shipped, raw, ENV).verdict.outcome is Outcome.ACCEPT


def test_without_a_limits_rule_beyond_limits_is_451_not_a_crash(
        shipped: PolicyState, tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    for f in (REPO / "rules").glob("*.yaml"):
        if f.name != "05-struktur.yaml":
            (rules / f.name).write_text(f.read_text(encoding="utf-8"), encoding="utf-8")
    state = load_policy_for(shipped.config.model_copy(update={
        "rules_dir": rules,
        "limits": shipped.config.limits.model_copy(update={"max_depth": 5})}))
    got = inspect(state, _deep(8), ENV)
    assert got.verdict.outcome is Outcome.TEMPFAIL
    assert got.reply is not None and (got.reply.code, got.reply.enhanced) == (451, "4.3.0")
    assert got.relay_bytes is None
    assert "nesting" in (got.verdict.reason or "")
    assert all("Traceback" not in line for line in got.reply.lines)


@pytest.mark.parametrize("raw", [
    multipart(b"Content-Type: text/plain\r\n\r\nx", ctype=b'multipart/mixed; boundary="b"; '
              b'boundary="c"'),
    multipart(b"Content-Type: text/plain\r\nContent-Type: application/x-msdownload\r\n\r\nx"),
    multipart(b"Content-Transfer-Encoding: 7bit\r\nContent-Transfer-Encoding: base64\r\n\r\nx"),
    multipart("Content-Disposition: attachment; filename=\"a\u202efdp.txt\"\r\n\r\nx".encode()),
])
def test_shipped_rules_reject_ambiguous_structure(shipped: PolicyState, raw: bytes) -> None:
    got = inspect(shipped, raw, ENV)
    assert got.verdict.rule_id == "struktur-mime-samar"
    assert got.reply is not None and (got.reply.code, got.reply.enhanced) == (550, "5.6.0")
    assert got.reply.lines[-1].startswith("rule=struktur-mime-samar ref=")


def test_unknown_defect_kind_is_a_load_error(tmp_path: Path) -> None:
    from gateway.policy.rules import builtin_lists, load_rules
    d = tmp_path / "rules"
    d.mkdir()
    (d / "10.yaml").write_text("rules:\n  - id: t\n    when: {mime_defect: [duplicate_cte]}\n"
                               "    action: reject\n")
    with pytest.raises(LoadError) as info:
        load_rules(d, builtin_lists(("anm.gov.my",), (), ()))
    assert "duplicate_cte" in str(info.value.problems[0])


def _ratio_bomb() -> bytes:
    import io
    import zipfile
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("nota.txt", b"\x00" * (20 * 1024 * 1024))  # about 1000:1
    return buf.getvalue()


def test_a_zip_bomb_found_in_the_documents_is_rejected_by_the_limits_rule(
        shipped: PolicyState) -> None:
    from email.message import EmailMessage
    msg = EmailMessage()
    msg["From"] = "luar@example.org"
    msg["Subject"] = "Dokumen"
    msg.set_content("Salam.")
    msg.add_attachment(_ratio_bomb(), maintype="application", subtype="zip",
                       filename="nota.zip")
    raw = msg.as_bytes()
    assert MessageView(raw).complete  # the structure alone is fine
    got = inspect(shipped, raw, ENV)
    assert (got.verdict.outcome, got.verdict.rule_id) == (Outcome.REJECT, "struktur-melebihi-had")
    assert got.view.complete is False


def test_bomb_in_a_document_fails_classification_closed_without_the_structure_rule(
        tmp_path: Path) -> None:
    # Regression: require_complete() looked only at the MIME walk, so a limit met while
    # reading documents left the classification check answering "unmarked".
    from email.message import EmailMessage

    from gateway.policy.engine import evaluate
    from gateway.policy.rules import builtin_lists, load_rules

    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "10.yaml").write_text(
        "rules:\n  - {id: sulit, when: {classification: [SULIT, TERHAD, RAHSIA]}, "
        "action: reject, reply: {code: 550, enhanced: '5.7.1', text: x}}\n")
    ruleset = load_rules(rules, builtin_lists(("anm.gov.my",), (), ()))
    bomb = (Path(__file__).parents[1] / "corpus" / "cases" / "documents"
            / "overlap-bomb.zip").read_bytes()
    m = EmailMessage()
    m["From"], m["Subject"] = "a@anm.gov.my", "Pakej"
    m.set_content("Lampiran.")
    m.add_attachment(bomb, maintype="application", subtype="zip", filename="pakej.zip")
    env = Envelope("inbound", "in", "127.0.0.1", "h", "a@anm.gov.my", ("b@anm.gov.my",))
    with pytest.raises(NotInspectable):
        evaluate(ruleset, MessageView(m.as_bytes()), env)
