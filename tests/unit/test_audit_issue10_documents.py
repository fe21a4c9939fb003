"""Issue 10 audit (items 1-2, documents): placements the audit found reported inexactly.

Each test names a placement officers use and the part the readers must report it as
(once a strict xfail, now fixed); the case files are LibreOffice's, made by
tests/corpus/make_legacy_office.py.
"""

from __future__ import annotations

from pathlib import Path

from gateway.config import load_config
from gateway.message.view import MessageView
from tests.support.corpus import message_of

REPO = Path(__file__).resolve().parents[2]
LEGACY = REPO / "tests" / "corpus" / "cases" / "office" / "legacy"


def _ats(name: str) -> set[str]:
    limits = load_config(REPO / "config" / "gateway.yaml").limits.inspection()
    view = MessageView(message_of(LEGACY / name), limits=limits)
    return {str(f.where.get("at")) for f in view.markings.found}


def test_a_header_text_box_is_reported_as_header() -> None:
    ats = _ats("Minit-header-textbox.doc")
    assert "attachment:Minit-header-textbox.doc:header" in ats, ats
    assert "attachment:Minit-header-textbox.doc:footer" not in ats, ats


def test_a_footer_text_box_is_reported_as_footer() -> None:
    # Word 97 keeps the text boxes of headers and footers in one story (ccpHdrTxbx);
    # msdoc.py follows each box's shape to its anchor (PlcfHdrtxbxTxt -> OfficeArt
    # lTxid -> PlcSpaHdr Spa -> Plcfhdd story).
    ats = _ats("Minit-footer-textbox.doc")
    assert "attachment:Minit-footer-textbox.doc:footer" in ats, ats
    assert "attachment:Minit-footer-textbox.doc:header" not in ats, ats
