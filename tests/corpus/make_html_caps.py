"""Writes the HTML capitals corpus cases: tests/corpus/cases/mime/html/.

A marking typed in lower case and shown in capitals by CSS (`text-transform:
uppercase`, small caps) is read as shown (gateway.message.text, "CSS capitals"):

- Minit-LibreOffice.eml: the HTML body is what LibreOffice writes (`soffice
  --headless --convert-to html`, 7.4 was used) for a flat text document whose
  paragraph style sets `fo:text-transform="uppercase"` on `rahsia` and whose
  character style sets small caps on a word in a sentence: inline `style`
  attributes. Its plain alternative is the text as typed, as a mail program writes
  it: no marking there.
- Gaya-kelas.eml: rules in a `<style>` element with class, type and id selectors,
  as Word's "Save as Web Page" writes them (`p.Klasifikasi`); built here, since no
  program on the build host writes such rules.
- Gaya-bukan-huruf-besar.eml: what does not make capitals: `capitalize`,
  `text-transform: none` inside an uppercase block, a rule with a descendant
  selector (not modelled), an uppercase paragraph closed by the next `<p>`.

Run `python tests/corpus/make_html_caps.py` from the repository root with
LibreOffice on the PATH; it rewrites only this folder. LibreOffice is not needed by
the tests: the generated files are committed. All content is made up.

Envelope of the runner: inbound luar@example.org -> pegawai@anm.gov.my,
outbound pegawai@anm.gov.my -> penerima@example.org.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_odf_rtf as odf
from sidecars import write_cases

OUT = Path(__file__).resolve().parent / "cases" / "mime" / "html"
PROFILE = Path("/tmp/lo-html-caps")
HEAD = (b"From: Pegawai <pegawai@anm.gov.my>\r\nTo: penerima@example.org\r\n"
        b"Date: Mon, 03 Mar 2025 09:00:00 +0800\r\nMessage-ID: <gaya@anm.gov.my>\r\n"
        b"MIME-Version: 1.0\r\n")
RAHSIA = {"outcome_inbound": "reject", "rule_inbound": "klasifikasi-rahsia",
          "outcome_outbound": "reject", "rule_outbound": "klasifikasi-rahsia"}
ACCEPT = {"outcome_inbound": "accept", "outcome_outbound": "accept"}


def libreoffice_html() -> bytes:
    """LibreOffice's HTML for `rahsia` in an uppercase paragraph style, then a sentence
    with a small-caps word."""
    src = odf.fodt((odf.p("PLACE1"), odf.p("PLACE2"), odf.p("Isi minit mesyuarat.")))
    src = src.replace("<office:styles/>", (
        '<office:styles><style:style style:name="Klasifikasi" style:family="paragraph">'
        '<style:text-properties fo:text-transform="uppercase" fo:font-weight="bold"/>'
        '</style:style><style:style style:name="Tanda" style:family="text">'
        '<style:text-properties fo:font-variant="small-caps"/></style:style></office:styles>'))
    src = src.replace(odf.p("PLACE1"), '<text:p text:style-name="Klasifikasi">rahsia</text:p>')
    src = src.replace(odf.p("PLACE2"), '<text:p>Maklumat ini <text:span text:style-name='
                                       '"Tanda">sulit</text:span> kepada jabatan.</text:p>')
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "minit.fodt"
        source.write_text(src, encoding="utf-8")
        subprocess.run(["soffice", "--headless", f"-env:UserInstallation=file://{PROFILE}",
                        "--convert-to", "html", "--outdir", tmp, str(source)],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       timeout=300)
        return (Path(tmp) / "minit.html").read_bytes()


def alternative(plain: bytes, html: bytes, subject: bytes = b"Minit mesyuarat") -> bytes:
    return (HEAD + b"Subject: " + subject + b"\r\n"
            b'Content-Type: multipart/alternative; boundary="alt"\r\n\r\n'
            b"--alt\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + plain
            + b"\r\n--alt\r\nContent-Type: text/html; charset=utf-8\r\n"
            b"Content-Transfer-Encoding: 8bit\r\n\r\n" + html.replace(b"\r\n", b"\n")
            .replace(b"\n", b"\r\n") + b"\r\n--alt--\r\n")


CLASS_RULES = b"""<html><head><style>
<!--
p.MsoNormal, li.MsoNormal, div.MsoNormal
	{margin:0cm; font-size:11.0pt; font-family:"Calibri",sans-serif;}
p.Klasifikasi
	{mso-style-name:Klasifikasi; text-align:center; text-transform:uppercase; font-weight:bold;}
#rujukan {font-variant:small-caps;}
@media screen { .tanda { text-transform: uppercase } }
-->
</style></head><body lang=EN-MY>
<div class=WordSection1>
<p class=Klasifikasi>rahsia besar</p>
<p class=MsoNormal>Tuan,</p>
<p class=MsoNormal id=rujukan>terhad</p>
<p class=MsoNormal>Sila rujuk <span class=tanda>sulit</span> yang dilampirkan.</p>
</div></body></html>"""

NOT_CAPITALS = b"""<html><head><style>
.nota p {text-transform:uppercase}
</style></head><body>
<p style="text-transform:capitalize">sulit</p>
<div style="text-transform:uppercase"><p>Salam,</p><p style="text-transform:none">rahsia</p></div>
<div class=nota><p>terhad</p></div>
<p style="text-transform:uppercase">Makluman<p>sulit
</body></html>"""


def cases() -> dict[str, tuple[bytes, dict[str, Any]]]:
    c: dict[str, tuple[bytes, dict[str, Any]]] = {}
    c["Minit-LibreOffice.eml"] = (alternative(
        b"rahsia\r\n\r\nMaklumat ini sulit kepada jabatan.\r\n\r\nIsi minit mesyuarat.\r\n",
        libreoffice_html()),
        {"note": "LibreOffice HTML: uppercase paragraph style, inline style attribute",
         "classification": "RAHSIA", "where": ["body:html"], "not_where": ["body"],
         "inspectable": True, **RAHSIA})
    c["Gaya-kelas.eml"] = (alternative(
        b"rahsia besar\r\n\r\nTuan,\r\n\r\nterhad\r\n", CLASS_RULES,
        subject=b"Pelan operasi"),
        {"note": "style sheet rules: p.Klasifikasi, #rujukan, .tanda in @media",
         "classification": "RAHSIA BESAR", "where": ["body:html"], "not_where": ["body"],
         "inspectable": True, **RAHSIA})
    c["Gaya-bukan-huruf-besar.eml"] = (alternative(
        b"sulit\r\n\r\nSalam,\r\n\r\nrahsia\r\n\r\nterhad\r\n", NOT_CAPITALS,
        subject=b"Makluman"),
        {"note": "capitalize, none inside uppercase, a descendant selector, an implied "
                 "end: nothing shown in capitals is a marking",
         "classification": None, "inspectable": True, **ACCEPT})
    return c


def main() -> int:
    print(f"wrote {write_cases(OUT, cases())} cases to {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
