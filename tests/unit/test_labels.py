"""Purview sensitivity labels (`label_map`, issue 14 item 6) and `marking_mismatch` (item 7).

The files are the corpus's (tests/corpus/make_labels.py: real OOXML parts added to
corpus documents, `.eml` files with the msip_labels header); the verdicts are the
SHIPPED rules' through `gateway.pipeline.inspect`, with the shipped config plus the
generator's `LABEL_MAP`, and `gateway check --json` runs as an administrator runs it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from gateway.config import load_config
from gateway.envelope import Envelope
from gateway.message import labels
from gateway.message.view import MessageView
from gateway.pipeline import inspect
from gateway.policy.checks.marking_mismatch import mismatches
from gateway.policy_state import PolicyState, load_policy_for
from gateway.problems import LoadError
from tests.corpus.make_labels import (
    CASES,
    GUID_AWAM,
    GUID_RAHSIA,
    GUID_SULIT,
    GUID_TERHAD,
    LABEL_MAP,
)

REPO = Path(__file__).resolve().parents[2]
MISMATCH = "klasifikasi-penandaan-tidak-sepadan"


def case(name: str) -> bytes:
    return (CASES / name).read_bytes()


def mail(subject: str, *, header: bytes | None = None, body: str = "Salam.\n",
         attachment: tuple[str, bytes] | None = None) -> bytes:
    """A message from pegawai@anm.gov.my; `header` a raw msip_labels value."""
    m = EmailMessage()
    m["From"] = "pegawai@anm.gov.my"
    m["To"] = "penerima@jpn.gov.my"
    m["Subject"] = subject
    m["Message-ID"] = "<label@anm.gov.my>"
    m.set_content(body)
    if attachment is not None:
        m.add_attachment(attachment[1], maintype="application", subtype="octet-stream",
                         filename=attachment[0])
    raw = m.as_bytes()
    if header is not None:
        raw = b"msip_labels: " + header + b"\r\n" + raw
    return raw


def header_case(name: str) -> bytes:
    """The msip_labels value of a corpus .eml."""
    m = re.search(rb"(?m)^msip_labels: (.*?)\r?$", case(name))
    assert m is not None
    return m.group(1)


def view(raw: bytes, label_map: dict[str, str] | None = LABEL_MAP) -> MessageView:
    return MessageView(raw, label_map=label_map)


def attached(name: str, subject: str = "Dokumen", **kw: Any) -> bytes:
    return mail(subject, attachment=(name, case(name)), **kw)


# -- reading labels ------------------------------------------------------------------

def test_parse_header_pairs() -> None:
    (label,) = labels.parse(header_case("Header-nama.eml").decode())
    assert label == labels.Label(GUID_SULIT, "Sulit - Dalaman", True,
                                 "72f988bf-86f1-41af-91ab-2d7cd011db47")
    off = f"MSIP_Label_{GUID_SULIT}_Enabled=false; MSIP_Label_{GUID_SULIT}_Name=SULIT;"
    assert labels.parse(off)[0].enabled is False
    assert labels.parse("no labels here") == []


def test_guid_keys_match_ids_in_any_case_and_braces_never_names() -> None:
    lm = labels.LabelMap({"{" + GUID_TERHAD.upper() + "}": "TERHAD", "Awam Dalaman": "SULIT"})
    assert lm.marking(labels.Label(GUID_TERHAD, "", True)) == "TERHAD"
    assert lm.marking(labels.Label(GUID_SULIT, GUID_TERHAD, True)) is None  # a name, not an id
    assert lm.marking(labels.Label(GUID_SULIT, "awam  DALAMAN", True)) == "SULIT"
    assert lm.marking(labels.Label(GUID_SULIT, "Awam", True)) is None
    assert not labels.LabelMap({})


@pytest.mark.parametrize(("name", "without", "with_map", "by"), [
    ("Header-nama.eml", "SULIT", "SULIT", "label_map"),
    ("Header-guid.eml", None, "TERHAD", "label_map"),
    ("Header-awam.eml", None, None, None),
])
def test_msip_labels_header_by_name_and_guid(name: str, without: str | None,
                                             with_map: str | None, by: str | None) -> None:
    raw = case(name)
    assert view(raw, None).classification == without
    v = view(raw)
    assert v.classification == with_map
    (seen,) = v.markings.labels
    assert (seen.at, seen.marking, seen.by) == ("header:msip_labels", with_map, by)
    if with_map is not None:
        (where,) = v.markings.where(with_map)
        assert where["at"] == "header:msip_labels"
        assert where["label"] == seen.label.name and where["label_by"] == by


@pytest.mark.parametrize(("name", "without", "with_map", "at"), [
    ("Label-nama.docx", "SULIT", "SULIT", "attachment:Label-nama.docx:msip_labels"),
    ("Label-guid.docx", None, "TERHAD", "attachment:Label-guid.docx:msip_labels"),
    ("LabelInfo.docx", None, "RAHSIA", "attachment:LabelInfo.docx:label_info"),
    ("LabelInfo-removed.docx", None, None, None),
])
def test_ooxml_custom_properties_and_label_info(name: str, without: str | None,
                                                with_map: str | None, at: str | None) -> None:
    raw = attached(name)
    assert view(raw, None).classification == without
    v = view(raw)
    assert v.classification == with_map
    if at is not None:
        assert [w["at"] for w in v.markings.where(with_map or "")] == [at]


def test_label_info_id_is_read_without_braces() -> None:
    (seen,) = view(attached("LabelInfo.docx")).markings.labels
    assert seen.label.id == GUID_RAHSIA and seen.label.name == ""
    assert (seen.marking, seen.by) == ("RAHSIA", "label_map")


# -- the verdicts: a mapped label is a written marking -----------------------------

@pytest.fixture(scope="module")
def policy() -> PolicyState:
    config = load_config(REPO / "config" / "gateway.yaml")
    return load_policy_for(config.model_copy(update={
        "rules_dir": REPO / config.rules_dir, "antivirus": None, "label_map": LABEL_MAP}))


def verdict(policy: PolicyState, raw: bytes) -> tuple[str | None, list[tuple[str, str]]]:
    envelope = Envelope(direction="outbound", listener="test", client_ip="127.0.0.1",
                        helo="t", mail_from="pegawai@anm.gov.my",
                        rcpt_to=("penerima@jpn.gov.my",))
    got = inspect(policy, raw, envelope)
    return got.verdict.rule_id, [(h.rule_id, h.mode) for h in got.verdict.hits]


PLAIN_DOCX = ("Lampiran.docx", (REPO / "tests/corpus/cases/office/ooxml/"
                                "Footnote-prose.docx").read_bytes())


@pytest.mark.parametrize(("header", "written"), [
    (header_case("Header-guid.eml"), "TERHAD: Minit mesyuarat"),
    (header_case("Header-nama.eml"), "SULIT: Minit mesyuarat"),
])
def test_label_gets_the_verdict_of_the_written_marking(policy: PolicyState, header: bytes,
                                                       written: str) -> None:
    labelled = verdict(policy, mail("Minit mesyuarat", header=header, attachment=PLAIN_DOCX))
    marked = verdict(policy, mail(written, attachment=PLAIN_DOCX))
    assert labelled == marked == ("klasifikasi-lampiran-tidak-disulitkan", [
        ("klasifikasi-lampiran-tidak-disulitkan", "enforce")])


def test_label_info_rahsia_is_refused_as_rahsia(policy: PolicyState) -> None:
    assert verdict(policy, attached("LabelInfo.docx")) == verdict(
        policy, mail("Dokumen", attachment=("RAHSIA-pelan.docx", PLAIN_DOCX[1]))) == (
        "klasifikasi-rahsia", [("klasifikasi-rahsia", "enforce")])


def test_unknown_label_changes_nothing(policy: PolicyState) -> None:
    assert verdict(policy, case("Header-awam.eml")) == (None, [])


# -- marking_mismatch --------------------------------------------------------------

def kinds(raw: bytes) -> list[tuple[str, str, str]]:
    return [(m["kind"], m["lower"]["marking"], m["higher"]["marking"])
            for m in mismatches(view(raw).markings.found)]


def test_mismatch_subject_below_attachment_and_the_highest_still_decides(
        policy: PolicyState) -> None:
    raw = attached("LabelInfo.docx", subject="TERHAD: Dokumen")
    (found,) = mismatches(view(raw).markings.found)
    assert found == {"kind": "text_below_attachment",
                     "lower": {"marking": "TERHAD", "at": ["subject"]},
                     "higher": {"marking": "RAHSIA",
                                "at": ["attachment:LabelInfo.docx:label_info"]}}
    # Monitor: logged before the refusal; RAHSIA (the highest) refuses the message.
    assert verdict(policy, raw) == ("klasifikasi-rahsia", [
        (MISMATCH, "monitor"), ("klasifikasi-rahsia", "enforce")])


def test_mismatch_body_below_attachment_file_name() -> None:
    raw = mail("Minit", body="TERHAD\n\nSila rujuk.\n",
               attachment=("SULIT-minit.docx", PLAIN_DOCX[1]))
    assert kinds(raw) == [("text_below_attachment", "TERHAD", "SULIT")]


def test_mismatch_label_below_text(policy: PolicyState) -> None:
    raw = case("Header-rendah.eml")
    assert kinds(raw) == [("label_below_text", "TERHAD", "SULIT")]
    assert verdict(policy, raw) == (None, [(MISMATCH, "monitor")])


def test_mismatch_document_label_below_its_footer() -> None:
    assert kinds(attached("Label-rendah.docx")) == [("label_below_text", "TERHAD", "SULIT")]


@pytest.mark.parametrize("raw", [
    # The text is higher than the attachment: the message is marked as its highest.
    mail("SULIT: Minit", attachment=("TERHAD-senarai.docx", PLAIN_DOCX[1])),
    # The text is not marked: no marking to be lower (the attachment's classifies it).
    mail("Minit", attachment=("SULIT-minit.docx", PLAIN_DOCX[1])),
    # The label agrees with the text, or is above it.
    mail("SULIT: Minit", header=header_case("Header-nama.eml")),
    mail("TERHAD: Minit", header=header_case("Header-nama.eml")),
    # Equal markings.
    mail("SULIT: Minit", attachment=("SULIT-minit.docx", PLAIN_DOCX[1])),
], ids=["text-higher", "text-unmarked", "label-equal", "label-higher", "equal"])
def test_no_mismatch(raw: bytes) -> None:
    assert kinds(raw) == []


def test_marking_mismatch_false_holds_only_without_one(policy: PolicyState) -> None:
    from gateway.policy.checks.base import Context
    from gateway.policy.checks.marking_mismatch import CHECK
    envelope = Envelope(direction="outbound", listener="t", client_ip="127.0.0.1", helo="t",
                        mail_from="", rcpt_to=())
    for raw, has in ((case("Header-rendah.eml"), True), (case("Header-nama.eml"), False)):
        ctx = Context(view=view(raw), envelope=envelope, agency_domains=("anm.gov.my",))
        assert (CHECK.evaluate(True, ctx) is not None) is has
        assert (CHECK.evaluate(False, ctx) is not None) is not has


def test_rahsia_log_keeps_no_label_name_or_place() -> None:
    from gateway.observe.rejection_log import redact
    v = view(attached("LabelInfo.docx", subject="TERHAD: Dokumen"))
    for found in v.markings.found:
        kept = redact(found.where)
        assert "label" not in kept and "at" not in kept and "name" not in kept
    assert "LabelInfo.docx" not in json.dumps(redact(mismatches(v.markings.found)))


# -- config ----------------------------------------------------------------------

BASE = ('listeners:\n  - {name: outbound, listen: "127.0.0.1:2525", direction: outbound}\n'
        'upstream: "maildir:var/mail"\nagency_domains: [anm.gov.my]\n')


@pytest.mark.parametrize(("text", "line", "message"), [
    ('label_map:\n  "Sulit - Dalaman": SULIT\n  Awam: PUBLIC\n', 7,
     "label_map.Awam: unknown classification 'PUBLIC': expected one of RAHSIA BESAR, "
     "RAHSIA, SULIT, TERHAD"),
    ("label_map: SULIT\n", 5, 'label_map: must be a mapping of Purview label GUIDs or names '
                              'to markings, e.g. {"Sulit - Dalaman": SULIT}'),
    ('label_map: {"Sulit - Dalaman": SULIT, "SULIT -  dalaman": TERHAD}\n', 5,
     "label_map: 'SULIT -  dalaman' names the same label as 'Sulit - Dalaman' with another "
     "level (TERHAD and SULIT)"),
    ('label_map: {"": SULIT}\n', 5,
     "label_map: a label must be named by its GUID or its name, not ''"),
])
def test_label_map_errors_name_file_and_line(tmp_path: Path, text: str, line: int,
                                             message: str) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text(BASE + text, encoding="utf-8")
    with pytest.raises(LoadError) as info:
        load_config(path)
    assert [str(p) for p in info.value.problems] == [f"{path}:{line}: {message}"]


def test_label_map_levels_in_any_case_are_normalised(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text(BASE + f'label_map: {{"{GUID_AWAM}": rahsia  besar}}\n', encoding="utf-8")
    assert load_config(path).label_map == {GUID_AWAM: "RAHSIA BESAR"}


# -- gateway check --json ------------------------------------------------------------

def check_json(tmp_path: Path, raw: bytes) -> dict[str, Any]:
    text = (REPO / "config" / "gateway.yaml").read_text(encoding="utf-8")
    text = re.sub(r"(?m)^antivirus:\n(?:  .*\n)*", "", text)
    text = text.replace("rules_dir: rules", f"rules_dir: {REPO / 'rules'}")
    config = tmp_path / "gateway.yaml"
    config.write_text(text + "label_map:\n" + "".join(
        f'  "{k}": {v}\n' for k, v in LABEL_MAP.items()), encoding="utf-8")
    message = tmp_path / "m.eml"
    message.write_bytes(raw)
    proc = subprocess.run([sys.executable, "-m", "gateway", "check", "--config", str(config),
                           "--json", str(message)], capture_output=True, timeout=60,
                          cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def test_check_json_lists_unknown_labels(tmp_path: Path) -> None:
    r = check_json(tmp_path, case("Header-awam.eml"))
    assert r["action"] == "accept" and r["classification"] is None
    assert r["unknown_labels"] == [{"id": GUID_AWAM, "name": "Awam", "enabled": True,
                                    "at": "header:msip_labels", "marking": None, "by": None}]
    assert r["labels"] == r["unknown_labels"]


def test_check_json_mapped_label_and_mismatch(tmp_path: Path) -> None:
    raw = mail("SULIT: Minit", header=header_case("Header-guid.eml"), attachment=PLAIN_DOCX)
    r = check_json(tmp_path, raw)
    assert (r["action"], r["rule_id"], r["classification"]) == (
        "reject", "klasifikasi-lampiran-tidak-disulitkan", "SULIT")
    assert r["labels"] == [{"id": GUID_TERHAD, "name": "Dalaman", "enabled": True,
                            "at": "header:msip_labels", "marking": "TERHAD",
                            "by": "label_map"}]
    assert r["unknown_labels"] == []
    first = r["matched"][0]
    assert (first["rule_id"], first["mode"]) == (MISMATCH, "monitor")
    assert first["evidence"]["marking_mismatch"] == [
        {"kind": "label_below_text", "lower": {"marking": "TERHAD", "at": ["header:msip_labels"]},
         "higher": {"marking": "SULIT", "at": ["subject"]}}]


def test_check_json_without_labels_has_no_label_keys(tmp_path: Path) -> None:
    r = check_json(tmp_path, mail("Mesyuarat"))
    assert "labels" not in r and "unknown_labels" not in r
