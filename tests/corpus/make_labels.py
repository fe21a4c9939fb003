"""Builds the sensitivity-label cases of the corpus: tests/corpus/cases/labels/.

Microsoft Purview labels as Office writes them into a Word file, added with zipfile
to documents already in the corpus (a LibreOffice-made `.docx` with no marking, and
`Minit-footer.docx` whose footer is SULIT): every part of the original is copied
as it is, and the label parts are added as Word adds them:

- `docProps/custom.xml`, custom properties `MSIP_Label_<GUID>_Enabled/SetDate/Method/
  Name/SiteId/ActionId/ContentBits` (ECMA-376 Part 1, 22.3 Custom File Properties;
  the pairs Microsoft documents for sensitivity labels), its content type
  `application/vnd.openxmlformats-officedocument.custom-properties+xml` and a
  package relationship of type `.../relationships/custom-properties`;
- `docMetadata/LabelInfo.xml` ([MS-OFFCRYPTO] 2.6.4: `clbl:labelList` of `clbl:label
  id="{GUID}" enabled= method= siteId= removed=`), the id only, no name; content type
  `application/vnd.ms-office.classificationlabels+xml`, relationship
  `http://schemas.microsoft.com/office/2020/02/relationships/classificationlabels`.

And messages with the `msip_labels` header Outlook writes (the same pairs, `;`-separated),
a label named by a marking-free name or by GUID only.

The sidecars say what the gateway finds WITHOUT a `label_map` (tests/unit/test_corpus.py);
tests/unit/test_labels.py reads the same files with the map `LABEL_MAP` below.

Run `python tests/corpus/make_labels.py` from the repository root; output is
byte-identical between runs.
"""

from __future__ import annotations

import io
import sys
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sidecars import write_cases

HERE = Path(__file__).resolve().parent
CASES = HERE / "cases" / "labels"
PLAIN = HERE / "cases" / "office" / "ooxml" / "Footnote-prose.docx"  # LibreOffice, no marking
SULIT_FOOTER = HERE / "cases" / "documents" / "Minit-footer.docx"  # footer SULIT
DATE = (2025, 1, 1, 0, 0, 0)
SITE = "72f988bf-86f1-41af-91ab-2d7cd011db47"

# The agency's labels in these cases: names in the agency's words, ids as the tenant has.
GUID_TERHAD = "5a4c7e1d-2b3f-4c6a-9d8e-1f0a2b3c4d5e"  # named "Dalaman" (no marking word)
GUID_SULIT = "8e9f0a1b-2c3d-4e5f-8a9b-0c1d2e3f4a5b"  # named "Sulit - Dalaman"
GUID_RAHSIA = "c0ffee00-1234-4abc-8def-0123456789ab"  # LabelInfo.xml only: no name
GUID_AWAM = "0b1c2d3e-4f5a-4b6c-8d7e-9f0a1b2c3d4e"  # "Awam": public, mapped to nothing
LABEL_MAP = {"Dalaman": "TERHAD", GUID_RAHSIA.upper(): "RAHSIA",
             "sulit - dalaman": "SULIT"}

CUSTOM_TYPE = "application/vnd.openxmlformats-officedocument.custom-properties+xml"
CUSTOM_REL = ("http://schemas.openxmlformats.org/officeDocument/2006/relationships/"
              "custom-properties")
LABELINFO_TYPE = "application/vnd.ms-office.classificationlabels+xml"
LABELINFO_REL = "http://schemas.microsoft.com/office/2020/02/relationships/classificationlabels"


def msip_pairs(guid: str, name: str, *, enabled: bool = True) -> list[tuple[str, str]]:
    """The fields of one label, in the order Office writes them."""
    return [(f"MSIP_Label_{guid}_Enabled", "true" if enabled else "false"),
            (f"MSIP_Label_{guid}_SetDate", "2025-01-01T00:00:00Z"),
            (f"MSIP_Label_{guid}_Method", "Privileged"),
            (f"MSIP_Label_{guid}_Name", name),
            (f"MSIP_Label_{guid}_SiteId", SITE),
            (f"MSIP_Label_{guid}_ActionId", "11111111-2222-4333-8444-555555555555"),
            (f"MSIP_Label_{guid}_ContentBits", "0")]


def custom_xml(pairs: list[tuple[str, str]]) -> bytes:
    props = "".join(
        f'<property fmtid="{{D5CDD505-2E9C-101B-9397-08002B2CF9AE}}" pid="{i}" '
        f'name="{name}"><vt:lpwstr>{value}</vt:lpwstr></property>'
        for i, (name, value) in enumerate(pairs, start=2))
    return ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\r\n<Properties '
            'xmlns="http://schemas.openxmlformats.org/officeDocument/2006/custom-properties" '
            'xmlns:vt="http://schemas.openxmlformats.org/officeDocument/2006/docPropsVTypes">'
            f"{props}</Properties>").encode()


def label_info_xml(guid: str, *, enabled: bool = True, removed: bool = False) -> bytes:
    return ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\r\n'
            '<clbl:labelList xmlns:clbl="http://schemas.microsoft.com/office/2020/'
            f'mipLabelMetadata"><clbl:label id="{{{guid}}}" enabled="{int(enabled)}" '
            f'method="Privileged" siteId="{{{SITE}}}" contentBits="0" '
            f'removed="{int(removed)}"/></clbl:labelList>').encode()


def with_parts(base: Path, parts: dict[str, tuple[bytes, str, str]]) -> bytes:
    """`base` with `parts` (name -> (bytes, content type, package relationship type))
    added: their content-type overrides and package relationships written into the
    original `[Content_Types].xml` and `_rels/.rels`."""
    out = io.BytesIO()
    with zipfile.ZipFile(base) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "[Content_Types].xml":
                overrides = "".join(f'<Override PartName="/{name}" ContentType="{ctype}"/>'
                                    for name, (_d, ctype, _r) in parts.items())
                data = data.replace(b"</Types>", overrides.encode() + b"</Types>")
            elif info.filename == "_rels/.rels":
                rels = "".join(f'<Relationship Id="rIdLabel{i}" Type="{rel}" Target="{name}"/>'
                               for i, (name, (_d, _c, rel)) in enumerate(parts.items()))
                data = data.replace(b"</Relationships>", rels.encode() + b"</Relationships>")
            new = zipfile.ZipInfo(info.filename, DATE)
            new.compress_type = zipfile.ZIP_DEFLATED
            dst.writestr(new, data)
        for name, (data, _c, _r) in parts.items():
            new = zipfile.ZipInfo(name, DATE)
            new.compress_type = zipfile.ZIP_DEFLATED
            dst.writestr(new, data)
    return out.getvalue()


def custom(pairs: list[tuple[str, str]]) -> dict[str, tuple[bytes, str, str]]:
    return {"docProps/custom.xml": (custom_xml(pairs), CUSTOM_TYPE, CUSTOM_REL)}


def label_info(guid: str, **kw: bool) -> dict[str, tuple[bytes, str, str]]:
    return {"docMetadata/LabelInfo.xml": (label_info_xml(guid, **kw), LABELINFO_TYPE,
                                          LABELINFO_REL)}


def eml(subject: str, header: str | None, body: str = "Salam,\r\n\r\nSila rujuk.\r\n") -> bytes:
    lines = ["From: Pegawai <pegawai@anm.gov.my>", "To: Penerima <penerima@example.org>",
             f"Subject: {subject}", "Date: Wed, 01 Jan 2025 08:00:00 +0800",
             "Message-ID: <label-case@anm.gov.my>", "MIME-Version: 1.0",
             "Content-Type: text/plain; charset=utf-8"]
    if header is not None:
        lines.append(f"msip_labels: {header}")
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


def header_of(pairs: list[tuple[str, str]]) -> str:
    return " ".join(f"{name}={value};" for name, value in pairs)


def cases() -> dict[str, tuple[bytes, dict[str, object]]]:
    plain = "a LibreOffice .docx from the corpus with Purview label parts added by zipfile"
    return {
        # Named labels in custom.xml: "Sulit - Dalaman" is SULIT by its name alone.
        "Label-nama.docx": (
            with_parts(PLAIN, custom(msip_pairs(GUID_SULIT, "Sulit - Dalaman"))),
            {"classification": "SULIT", "where": ["attachment:Label-nama.docx:msip_labels"],
             "source": plain}),
        # A name with no marking word: a marking only through label_map.
        "Label-guid.docx": (
            with_parts(PLAIN, custom(msip_pairs(GUID_TERHAD, "Dalaman"))),
            {"classification": None, "source": plain}),
        # LabelInfo.xml: the id only; a marking only through label_map (by GUID).
        "LabelInfo.docx": (
            with_parts(PLAIN, label_info(GUID_RAHSIA)),
            {"classification": None, "source": plain}),
        "LabelInfo-removed.docx": (
            with_parts(PLAIN, label_info(GUID_RAHSIA, removed=True)),
            {"classification": None, "source": plain}),
        # A document labelled lower than its own footer: Terhad label, SULIT footer.
        "Label-rendah.docx": (
            with_parts(SULIT_FOOTER, custom(msip_pairs(GUID_AWAM, "Terhad"))),
            {"classification": "SULIT",
             "where": ["attachment:Label-rendah.docx:footer",
                       "attachment:Label-rendah.docx:msip_labels"],
             "source": "Minit-footer.docx (corpus) with a custom.xml label added by zipfile"}),
        # The msip_labels header, by name and by GUID.
        "Header-nama.eml": (
            eml("Minit mesyuarat", header_of(msip_pairs(GUID_SULIT, "Sulit - Dalaman"))),
            {"classification": "SULIT", "where": ["header:msip_labels"],
             "note": "a label named `Sulit - Dalaman` in the msip_labels header"}),
        "Header-guid.eml": (
            eml("Minit mesyuarat", header_of(msip_pairs(GUID_TERHAD, "Dalaman"))),
            {"classification": None,
             "note": "label `Dalaman`: TERHAD only through label_map (tests/unit/test_labels.py)"}),
        "Header-awam.eml": (
            eml("Makluman", header_of(msip_pairs(GUID_AWAM, "Awam"))),
            {"classification": None, "note": "a label that is no marking: listed as unknown"}),
        # A TERHAD label on SULIT text: the downgrade marking_mismatch reports.
        "Header-rendah.eml": (
            eml("SULIT: Minit mesyuarat", header_of(msip_pairs(GUID_AWAM, "Terhad"))),
            {"classification": "SULIT", "where": ["subject", "header:msip_labels"],
             "note": "label Terhad below the SULIT subject: marking_mismatch"}),
    }


def main() -> int:
    n = write_cases(CASES, cases())
    print(f"{n} cases written to {CASES}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
