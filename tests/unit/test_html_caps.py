"""HTML bodies read as shown: CSS capitals (gateway.message.text, "CSS capitals").

`text-transform: uppercase` and small caps, from `style` attributes and simple
`<style>` rules, make a marking typed in lower case one; `capitalize`, `none` and
what is not modelled leave the text as typed. Hostile markup stays linear and falls
back to the text as typed. The real messages (LibreOffice's HTML among them) are
tests/corpus/cases/mime/html/ (tests/corpus/make_html_caps.py).
"""

from __future__ import annotations

import time

import pytest

from gateway.message import text as text_mod
from gateway.message.markings import in_line
from gateway.message.text import MAX_HTML_DEPTH, MAX_STYLE_CHARS, fold, html_to_text
from gateway.message.view import MessageView


def render(html: str) -> list[str]:
    return [line for line in html_to_text(html)[0].splitlines() if line]


def html_message(html: str) -> bytes:
    return (b"From: a@anm.gov.my\r\nTo: b@example.org\r\nSubject: Makluman\r\n"
            b"MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
            + html.encode() + b"\r\n")


def where(html: str) -> list[tuple[str, str, int]]:
    view = MessageView(html_message(html))
    return [(str(f.where["at"]), f.marking, int(f.where["lineno"]))
            for f in view.markings.found]


# -- inline styles -----------------------------------------------------------------

@pytest.mark.parametrize("html", [
    '<p style="text-transform:uppercase">sulit</p>',
    '<div style="TEXT-TRANSFORM: Uppercase !important">sulit</div>',
    '<table><tr><td style="text-transform:uppercase">sulit</td></tr></table>',
    '<p><span style="text-transform: uppercase">sulit</span></p>',
    '<p style="font-variant:small-caps">sulit</p>',
    '<p style="font-variant-caps:all-small-caps">sulit</p>',
    '<p style="font: italic small-caps bold 12pt/14pt Arial, sans-serif">sulit</p>',
    '<body style="text-transform:uppercase"><div><p>sulit</p></div></body>',
    # References and CSS escapes are what the client reads too.
    '<p style="text-transform&colon;uppercase">sulit</p>',
    '<p style="text-tr\\61nsform:/* x */uppercase">sulit</p>',
    "<p style='color:red;text-transform:uppercase'>s&#117;lit</p>",
])
def test_inline_capitals_are_read_as_shown(html: str) -> None:
    assert render(html) == ["SULIT"]
    assert in_line(fold(render(html)[0])) == "SULIT"


@pytest.mark.parametrize("html", [
    '<p style="text-transform:capitalize">sulit</p>',
    '<p style="text-transform:lowercase">sulit</p>',
    '<p style="text-transform:uppercase-ish">sulit</p>',
    '<div style="text-transform:uppercase"><p style="text-transform:none">sulit</p></div>',
    '<div style="font-variant:small-caps"><p style="font-variant:normal">sulit</p></div>',
    # The `font` shorthand resets the variant; an invalid one is dropped.
    '<div style="font-variant:small-caps"><p style="font:11.0pt Calibri">sulit</p></div>',
    '<p style="font-variant:titling-caps">sulit</p>',
    # A string holding a declaration is a string.
    "<p style=\"font-family:'x;text-transform:uppercase'\">sulit</p>",
    '<p data-style="text-transform:uppercase" title="style=text-transform:uppercase">sulit</p>',
])
def test_not_capitals_stay_as_typed(html: str) -> None:
    assert render(html) == ["sulit"]


def test_invalid_font_shorthand_keeps_the_inherited_small_caps() -> None:
    assert render('<div style="font-variant:small-caps"><p style="font:bold">sulit</p></div>'
                  ) == ["SULIT"]


def test_inherit_takes_the_parent() -> None:
    assert render('<style>p{text-transform:none}</style><div style="text-transform:uppercase">'
                  '<p style="text-transform:inherit">sulit</p></div>') == ["SULIT"]


# -- style sheets -----------------------------------------------------------------------

@pytest.mark.parametrize(("sheet", "body"), [
    (".k {text-transform:uppercase}", '<p class="k">sulit</p>'),
    ("p.k {text-transform:uppercase}", '<p class="x K">sulit</p>'),
    ("#y {font-variant:small-caps}", '<div id="Y">sulit</div>'),
    ("span {text-transform:uppercase}", "<p><span>sulit</span></p>"),
    ("h1, td.a.b {text-transform:uppercase}", '<table><tr><td class="b a">sulit</td></tr></table>'),
    ("* {text-transform:uppercase}", "<p>sulit</p>"),
    ("@media screen and (min-width:0) { .k { text-transform: uppercase } }",
     '<p class="k">sulit</p>'),
    ("<!-- .k {text-transform:uppercase} -->", '<p class="k">sulit</p>'),
    # Cascade: !important beats inline, inline beats rules, specificity, then order.
    (".k {text-transform:uppercase !important}",
     '<p class="k" style="text-transform:none">sulit</p>'),
    ("p {text-transform:none} .k {text-transform:uppercase}", '<p class="k">sulit</p>'),
    (".k {text-transform:uppercase} p {text-transform:none}", '<p class="k">sulit</p>'),
    (".k {text-transform:none} .k {text-transform:uppercase}", '<p class="k">sulit</p>'),
])
def test_style_sheet_rules(sheet: str, body: str) -> None:
    assert render(f"<html><head><style>{sheet}</style></head><body>{body}</body></html>") == [
        "SULIT"]


@pytest.mark.parametrize(("sheet", "body"), [
    (".k {text-transform:uppercase}", '<p class="kk">sulit</p>'),
    ("p.k {text-transform:uppercase}", '<div class="k">sulit</div>'),
    (".k {text-transform:uppercase}", '<p class="k" style="text-transform:none">sulit</p>'),
    (".k {text-transform:uppercase} .k {text-transform:none}", '<p class="k">sulit</p>'),
    ("#a#b {text-transform:uppercase}", '<p id="a">sulit</p>'),
    # Not modelled: combinators, attributes, pseudo-classes (read as typed).
    (".a p {text-transform:uppercase}", '<div class="a"><p>sulit</p></div>'),
    ("p:first-child {text-transform:uppercase}", "<p>sulit</p>"),
    ("p::first-line {text-transform:uppercase}", "<p>sulit</p>"),
    ("[lang] {text-transform:uppercase}", '<p lang="ms">sulit</p>'),
    ("/* .k {text-transform:uppercase} */", '<p class="k">sulit</p>'),
])
def test_style_sheet_rules_that_do_not_apply(sheet: str, body: str) -> None:
    assert render(f"<style>{sheet}</style>{body}") == ["sulit"]


def test_style_in_a_comment_or_script_is_not_read() -> None:
    assert render('<!-- <style>.k{text-transform:uppercase}</style> --><p class="k">sulit</p>'
                  ) == ["sulit"]
    assert render('<script>"<style>.k{text-transform:uppercase}</style>"</script>'
                  '<p class="k">sulit</p>') == ["sulit"]


# -- where capitals end ---------------------------------------------------------------

@pytest.mark.parametrize(("html", "lines"), [
    ('<p><span style="text-transform:uppercase">rahsia</span> kejayaan kita</p>',
     ["RAHSIA kejayaan kita"]),
    # An unclosed element ends with the element that holds it...
    ('<td style="x"><span style="text-transform:uppercase">sulit</td><td>isi</td>',
     ["SULIT", "isi"]),
    ('<div><p><span style="text-transform:uppercase">sulit</div><p>isi</p>', ["SULIT", "isi"]),
    # ... at an implied end ...
    ('<p style="text-transform:uppercase">sulit<p>isi', ["SULIT", "isi"]),
    ('<p style="text-transform:uppercase">sulit<div>isi</div>', ["SULIT", "isi"]),
    ('<ul><li style="text-transform:uppercase">sulit<li>isi</ul>', ["SULIT", "isi"]),
    ('<dl><dt style="text-transform:uppercase">sulit<dd>isi</dl>', ["SULIT", "isi"]),
    ('<table><tr style="text-transform:uppercase"><td>sulit<tr><td>isi</table>',
     ["SULIT", "isi"]),
    ('<table><tr><td style="text-transform:uppercase">sulit<td>isi</table>', ["SULIT", "isi"]),
    # ... or at the end of the document (an inline element holds the blocks after it).
    ('<span style="text-transform:uppercase">sulit<p>isi</p>', ["SULIT", "ISI"]),
    # A stray end tag closes nothing; a void element opens nothing.
    ('<p style="text-transform:uppercase">sulit</span><br>isi</p>', ["SULIT", "ISI"]),
    ('<p style="text-transform:uppercase"><img src="x.png">sulit</p>isi', ["SULIT", "isi"]),
])
def test_scope_of_capitals(html: str, lines: list[str]) -> None:
    assert render(html) == lines


def test_references_inside_capitals_are_resolved_once() -> None:
    assert render('<p style="text-transform:uppercase">a &amp;lt; &eacute; &nbsp;b</p>') == [
        "A &LT; É B"]


# -- evidence ---------------------------------------------------------------------------

def test_a_marking_shown_in_capitals_has_the_evidence_of_one_typed_so() -> None:
    frame = ("<html><head><style>p {{margin:0}}</style></head><body>\n<p>Tuan,</p>\n"
             "<p>Minit dilampirkan.</p>\n<p>{}</p>\n<p>Sekian.</p>\n</body></html>")
    typed = where(frame.format("RAHSIA"))
    assert typed == [("body:html", "RAHSIA", 9)]
    assert where(frame.format('<span style="text-transform:uppercase">rahsia</span>')) == typed
    assert where(frame.format('<span style="font-variant:small-caps">rahsia</span>')) == typed
    assert where(frame.format("rahsia")) == []


def test_ordinary_html_renders_as_before() -> None:
    # No capitals anywhere: text, lines and links exactly as the plain renderer made them.
    html = ('<html><head><title>Nota</title><style>p.MsoNormal {font-size:11pt;font-family:'
            'Calibri}</style></head><body><p class=MsoNormal style="font:11pt Calibri">Tuan,'
            '<o:p></o:p></p><p>Sila lihat <a href="https://example.org/a?b=1&amp;c=2">pautan'
            '</a>.<br>Rahsia kejayaan &amp; &lt;b&gt;</p><table><tr><td>SULIT<td>x</table>'
            "</body></html>")
    assert html_to_text(html) == (
        "\nNota\n\nTuan,\n\nSila lihat pautan.\nRahsia kejayaan & <b>\n\n\n\nSULIT\nx",
        ("https://example.org/a?b=1&c=2",))


def test_a_sentence_in_capitals_is_still_not_a_marking() -> None:
    html = '<p style="text-transform:uppercase">Maklumat ini adalah rahsia syarikat kami</p>'
    assert MessageView(html_message(html)).classification is None
    html = '<p style="text-transform:uppercase">Pendaftaran dibuka - tempat terhad</p>'
    assert MessageView(html_message(html)).classification is None


def test_red_team_body_is_read_as_shown() -> None:
    html = '<p style="text-transform:uppercase">sulit</p><p>Isi.</p>'
    assert MessageView(html_message(html)).classification == "SULIT"
    assert MessageView(html_message("<p>sulit</p><p>Isi.</p>")).classification is None


# -- bounds -----------------------------------------------------------------------------

def _fast(html: str, seconds: float = 10.0) -> list[str]:
    started = time.process_time()
    lines = render(html)
    assert time.process_time() - started < seconds
    return lines


def test_a_million_nested_spans_are_linear() -> None:
    html = '<span style="text-transform:uppercase">' + "<span>" * 1_000_000 + "sulit" \
        + "</span>" * 1_000_000 + "</span> isi"
    assert _fast(html) == ["SULIT isi"]


def test_deeper_than_the_bound_takes_the_parents_capitals() -> None:
    deep = "<span>" * (MAX_HTML_DEPTH + 10)
    assert _fast(f'<p style="text-transform:uppercase">{deep}sulit</p>') == ["SULIT"]
    # A deeper element's own style is past the bound: read as typed.
    assert _fast(f'{deep}<span style="text-transform:uppercase">sulit</span>') == ["sulit"]
    # Its end tags do not close the elements above it.
    assert _fast(f'<p style="text-transform:uppercase">{deep}x' + "</span>" * 600
                 + " sulit</p>")[-1] == "X SULIT"


def test_many_paragraphs_and_table_soup_are_linear() -> None:
    assert len(_fast("<p>x" * 200_000)) == 200_000
    _fast("<table><tr><td><p><li><dd><span>" * 50_000)


def test_huge_style_sheets_are_bounded() -> None:
    many = "".join(f".a.z{i} {{text-transform:uppercase}}\n" for i in range(20_000))
    html = f"<style>{many}</style>" + '<p class="a z5">sulit</p>' * 100_000
    lines = _fast(html)
    # Past the selector-test budget, text is read as typed: never lost, never raised.
    assert lines[0] == "SULIT" and lines[-1] == "sulit" and len(lines) == 100_000
    # Style sheet text past MAX_STYLE_CHARS is not read.
    padding = "p {color:red}\n" * (MAX_STYLE_CHARS // 14 + 10)
    assert _fast(f"<style>{padding}.k{{text-transform:uppercase}}</style>"
                 '<p class="k">sulit</p>') == ["sulit"]
    assert _fast("<style>.k{text-transform:uppercase}</style><style>" + "{" * 1_000_000
                 + "}</style><p class=k>sulit</p>") == ["SULIT"]


def test_hostile_style_text_is_linear() -> None:
    for css in ("/*" + "*" * 1_000_000, "a;" * 500_000, "{" * 1_000_000, "}" * 1_000_000,
                '"' * 1_000_000, "\\" * 1_000_000, "@media x{" * 200_000):
        _fast(f"<style>{css}</style><p>sulit</p>")
    _fast('<p style="' + "text-transform:uppercase;" * 200_000 + '">sulit</p>')
    _fast('<p style="' + "font:" + "1px " * 500_000 + '">sulit</p>')
    _fast("<p " + "class=a " * 300_000 + ">sulit</p>")


def test_unclosed_style_hides_the_rest_as_before() -> None:
    assert render("<p>Tuan</p><style>.k{text-transform:uppercase}<p class=k>sulit") == ["Tuan"]
    assert text_mod.MAX_CSS_RULES >= 1000
