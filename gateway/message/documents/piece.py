"""`Piece`: one run of text a document reader found, and the rule it is read by.

Readers (OOXML, PDF, archives) say what a text is and where it stood; the marking
grammar (`gateway.message.markings`) decides what counts, so this package never
needs to know what a marking looks like. Rules:

- `lines`: body rules, line by line (a paragraph, a cell, a PDF page, a text file);
- `label`: a header or footer: each tab- or line-separated segment by the body
  rules, or by the subject rules (`SULIT - Minit`, `Laporan (TERHAD)`);
- `msip`: `MSIP_Label_<id>_<Field>=value;` pairs, as in the msip_labels header;
- `filename`: a name inside an archive, by the file-name rule;
- `subject`: the subject of a message enclosed in a document (Outlook `.msg`,
  TNEF `winmail.dat`), by the subject rules;
- `unreadable`: not text at all but a finding: this part of the document has no
  text a reader could be vouched for (an image-only scanned page, a picture);
  `text` says why in our own words (never document content).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Rule = Literal["lines", "label", "msip", "filename", "subject", "unreadable"]


@dataclass(frozen=True)
class Piece:
    rule: Rule
    # body | header | footer | cell | slide | slide_master | notes | textbox | footnote |
    # watermark | page | msip_labels | content | filename | subject | image | archive
    part: str
    text: str
    number: int = 0  # page or slide number (1-based), 0 when the part has none
    path: str = ""  # member path inside the attachment's archives: "inner.zip/x.docx"

    @property
    def location(self) -> str:
        """`footer`, `page3`, `slide2`: the readable last element of an evidence `at`."""
        return f"{self.part}{self.number}" if self.number else self.part
