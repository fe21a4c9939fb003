"""Markings in PDF page text, PDF lines as a reader sees them, PDF encryption for a
reader, and the bounds on reading."""

from __future__ import annotations

import email.policy
import sys
import threading
import time
from dataclasses import replace
from email.message import EmailMessage
from pathlib import Path

import pytest

from gateway.message import documents, encryption
from gateway.message.documents import pdf
from gateway.message.limits import DEFAULT_LIMITS, ExpansionBudget
from gateway.message.view import MessageView

sys.path.insert(0, str(Path(__file__).parents[1] / "corpus"))
import make_documents as make
import make_pdf_lines as lines_make

FIXTURES = Path(__file__).parents[1] / "corpus" / "fixtures" / "pdf"
LINE_CASES = Path(__file__).parents[1] / "corpus" / "cases" / "pdf"
ROW = ("RAHSIA BESAR", "Rujukan: ANM.100-1/2/3")


def wrap(name: str, data: bytes) -> bytes:
    msg = EmailMessage()
    msg["From"] = "pegawai@anm.gov.my"
    msg["Subject"] = "Lampiran"
    msg.set_content("Salam.")
    msg.add_attachment(data, maintype="application", subtype="pdf", filename=name)
    return msg.as_bytes(policy=email.policy.SMTP)


def view_with(name: str, data: bytes) -> MessageView:
    return MessageView(wrap(name, data))


def test_first_line_of_page_one() -> None:
    view = view_with("l.pdf", make.pdf(("TERHAD", "Laporan Audit Dalaman")))
    assert view.classification == "TERHAD"
    (where,) = view.markings.where("TERHAD")
    assert where == {"in": "attachment", "index": 0, "name": "l.pdf", "field": "page",
                     "page": 1, "lineno": 1, "at": "attachment:l.pdf:page1"}


def test_bottom_line_of_a_later_page() -> None:
    view = view_with("b.pdf", make.pdf(("Muka 1",), ("Muka 2",), bottom=("", "*** SULIT ***")))
    assert view.classification == "SULIT"
    assert [w["at"] for w in view.markings.where("SULIT")] == ["attachment:b.pdf:page2"]


def test_highest_marking_over_pages() -> None:
    data = make.pdf(("TERHAD",), ("Isi",), ("RAHSIA",))
    view = view_with("h.pdf", data)
    assert view.classification == "RAHSIA"
    assert {f.marking for f in view.markings.found} == {"TERHAD", "RAHSIA"}


@pytest.mark.parametrize("line", [
    "E-MEL INI MUNGKIN MENGANDUNGI MAKLUMAT SULIT",
    "MAKLUMAT INI ADALAH RAHSIA SYARIKAT KAMI",
    "Kata laluan anda adalah rahsia.",
    "Tindakan terhadap aduan pelanggan",
    "KERAHSIAAN",
])
def test_prose_is_not_a_marking(line: str) -> None:
    assert view_with("p.pdf", make.pdf((line, "Isi."))).classification is None


def test_owner_password_only_is_plain_and_read() -> None:
    data = make.pdf_encrypted(make.pdf(("SULIT", "Isi.")), user="", owner="pemilik123")
    assert b"/Encrypt" in data
    assert pdf.encrypted(data) is False
    view = view_with("o.pdf", data)
    assert view.attachments[0].encrypted is False
    assert view.classification == "SULIT"


def test_user_password_is_encrypted_and_unread() -> None:
    data = make.pdf_encrypted(make.pdf(("SULIT", "Isi.")), user="buka123", owner="pemilik123")
    assert pdf.encrypted(data) is True
    view = view_with("u.pdf", data)
    assert view.attachments[0].encrypted is True
    assert view.classification is None  # an encrypted part cannot be searched: expected


def test_real_user_password_pdf_is_encrypted() -> None:
    data = (FIXTURES / "libreoffice-writer-password.pdf").read_bytes()
    assert pdf.encrypted(data) is True
    assert list(documents.pieces(data, documents.Bounds())) == []


@pytest.mark.parametrize("name", ["002-trivial-libre-office-writer.pdf",
                                  "google-doc-document.pdf", "with-attachment.pdf"])
def test_real_plain_pdfs_are_read(name: str) -> None:
    data = (FIXTURES / name).read_bytes()
    assert pdf.encrypted(data) is False
    pieces = list(documents.pieces(data, documents.Bounds()))
    assert pieces and pieces[0].number == 1 and pieces[0].text.strip()
    assert view_with(name, data).classification is None


def test_pages_beyond_the_bound_are_not_silently_skipped() -> None:
    # Before PDFium the reader read the first `max_pdf_pages` pages and dropped the
    # rest without a word: a SULIT on page 3 went unseen and the message looked clean.
    data = make.pdf(("Isi",), ("Isi",), ("SULIT",))
    with pytest.raises(documents.LimitExceeded, match="3 pages, more than 2"):
        list(documents.pieces(data, documents.Bounds(max_pdf_pages=2)))
    assert [p.number for p in documents.pieces(data, documents.Bounds(max_pdf_pages=3))] == \
        [1, 2, 3]


def test_deadline_stops_reading() -> None:
    with pytest.raises(documents.LimitExceeded):
        list(documents.pieces(make.pdf(("SULIT",)), documents.Bounds(seconds=-1)))


def test_damaged_pdf() -> None:
    good = make.pdf(("SULIT",))
    truncated = good[:60]
    assert list(documents.pieces(truncated, documents.Bounds())) == []
    assert pdf.encrypted(truncated) is False  # no /Encrypt anywhere: nothing encrypted
    assert pdf.encrypted(truncated + b"/Encrypt 5 0 R") is None
    assert encryption.attachment_encrypted(b"not a pdf", "application/pdf") is None



def test_document_readers_stop_at_the_config_inspection_timeout() -> None:
    # A worker thread cannot be cancelled, so the readers must give up themselves
    # at the deadline the front end waits for.
    from gateway.config import Limits
    from gateway.message.view import NotInspectable

    limits = Limits(inspection_timeout=1e-9).inspection()
    assert limits.max_seconds == 1e-9
    m = EmailMessage()
    m["From"], m["Subject"] = "a@anm.gov.my", "Laporan"
    m.set_content("Lampiran.")
    pdf_bytes = (Path(__file__).parents[1] / "corpus" / "cases" / "documents"
                 / "Laporan-page.pdf").read_bytes()
    m.add_attachment(pdf_bytes, maintype="application", subtype="pdf", filename="l.pdf")
    view = MessageView(m.as_bytes(), limits=limits)
    _ = view.classification
    assert not view.complete
    with pytest.raises(NotInspectable, match="too long"):
        view.require_complete()
    assert MessageView(m.as_bytes()).classification == "TERHAD"


# -- lines as a reader sees them -----------------------------------------------------

def page_texts(data: bytes, bounds: documents.Bounds | None = None) -> list[str]:
    return [p.text for p in pdf.pieces(data, bounds or documents.Bounds())]


def one_page(*streams: str) -> bytes:
    return lines_make.hand_pdf(["\n".join(streams)])


@pytest.mark.parametrize("slack", [0.0, 0.5, 1.0])
def test_one_glyph_per_operator_is_one_line(slack: float) -> None:
    data = one_page(lines_make.glyph_by_glyph("SULIT", 280, 750, slack=slack),
                    lines_make.text_line("Minit mesyuarat.", 72, 700))
    assert page_texts(data) == ["SULIT\nMinit mesyuarat."]
    assert view_with("g.pdf", data).classification == "SULIT"


def test_glyphs_drawn_in_any_order_stand_in_page_order() -> None:
    data = one_page(lines_make.glyph_by_glyph("SULIT", 280, 750, reverse=True))
    assert page_texts(data) == ["SULIT"]


@pytest.mark.parametrize(("blank_em", "expected"), [
    (0.0, "RAHSIA BESARRujukan: ANM.100-1/2/3"),
    (0.09, "RAHSIA BESARRujukan: ANM.100-1/2/3"),  # kerning: the same word
    (0.11, "RAHSIA BESAR Rujukan: ANM.100-1/2/3"),  # a word gap
    (0.39, "RAHSIA BESAR Rujukan: ANM.100-1/2/3"),
    (0.41, "RAHSIA BESAR\nRujukan: ANM.100-1/2/3"),  # apart: two cells
    (3.0, "RAHSIA BESAR\nRujukan: ANM.100-1/2/3"),
])
def test_text_objects_apart_on_one_baseline_are_separate_lines(blank_em: float,
                                                                expected: str) -> None:
    assert page_texts(one_page(lines_make.courier_row(*ROW, blank_em))) == [expected]


@pytest.mark.parametrize("blank_em", [0.41, 3.0, 8.0])
def test_a_wide_gap_inside_one_text_operator_does_not_split(blank_em: float) -> None:
    # LibreOffice justifies a line by widening the gaps inside one TJ.
    data = one_page(lines_make.courier_row(*ROW, blank_em, same_run=True))
    assert page_texts(data) == ["RAHSIA BESAR Rujukan: ANM.100-1/2/3"]


def test_the_table_row_marking_counts_and_the_justified_sentence_does_not() -> None:
    row = view_with("j.pdf", one_page(lines_make.courier_row(*ROW, 0.5)))
    assert row.classification == "RAHSIA BESAR"
    sentence = one_page(lines_make.courier_row("ADALAH", "RAHSIA", 3.0, same_run=True))
    assert view_with("s.pdf", sentence).classification is None


def test_blank_in_em_of_the_text_as_drawn() -> None:
    # Tf 1 scaled by a text matrix of 12 is 12-point text: a 0.3 em (3.6 pt) gap is a
    # word gap, not 3.6 em.
    stream = ("BT /F2 1 Tf 12 0 0 12 72 700 Tm (SULIT) Tj ET "
              f"BT /F2 1 Tf 12 0 0 12 {72 + 5 * 7.2 + 3.6:.2f} 700 Tm (Muka) Tj ET")
    assert page_texts(one_page(stream)) == ["SULIT Muka"]


@pytest.mark.parametrize(("rise", "expected"), [(2.0, ["SULIT"]), (6.0, ["IT\nSUL"])])
def test_one_baseline_within_a_quarter_em(rise: float, expected: list[str]) -> None:
    stream = "\n".join((lines_make.text_line("SUL", 72, 700, font="F2"),
                        lines_make.text_line("IT", 72 + 3 * 7.2, 700 + rise, font="F2")))
    assert page_texts(one_page(stream)) == expected


@pytest.mark.parametrize(("shown", "rise"), [
    ("(SU) Tj 4 Ts (L) Tj 0 Ts (IT) Tj", "a third of an em up"),
    ("(SU) Tj -4 Ts (L) Tj 0 Ts (IT) Tj", "a third of an em down"),
    ("(SU) Tj 5.5 Ts (LIT) Tj", "the end of the word up"),
    ("(S) Tj 4 Ts (ULI) Tj 0 Ts (T) Tj", "most of the word up"),
    ("(S) Tj 3 Ts (U) Tj 0 Ts (L) Tj -3 Ts (I) Tj 0 Ts (T) Tj", "up and down"),
])
def test_a_word_with_letters_raised_out_of_its_baseline_is_one_word(shown: str,
                                                                   rise: str) -> None:
    stream = f"BT /F1 12 Tf 250 750 Td {shown} ET"
    data = one_page(stream, lines_make.text_line("Minit mesyuarat.", 72, 700))
    assert page_texts(data) == ["SULIT\nMinit mesyuarat."], rise
    assert view_with("n.pdf", data).classification == "SULIT"


def test_a_raised_letter_in_the_middle_of_a_line_joins_its_word_only() -> None:
    stream = "BT /F1 12 Tf 72 750 Td (Dokumen SU) Tj 4 Ts (L) Tj 0 Ts (IT ini.) Tj ET"
    assert page_texts(one_page(stream)) == ["Dokumen SULIT ini."]


@pytest.mark.parametrize(("mark", "expected"), [
    ("4 Ts (1) Tj", "1\nSULIT"),  # a footnote digit at full size: not a letter
    ("/F1 7 Tf 4 Ts (a) Tj", "a\nSULIT"),  # a superscript letter: a smaller font
    ("/F1 7 Tf 4 Ts (1) Tj", "1\nSULIT"),
    ("6 Ts (X) Tj", "X\nSULIT"),  # half an em up: another line
])
def test_a_footnote_mark_after_a_marking_stays_apart(mark: str, expected: str) -> None:
    data = one_page(f"BT /F1 12 Tf 250 750 Td (SULIT) Tj {mark} ET")
    assert page_texts(data) == [expected]
    assert view_with("k.pdf", data).classification == "SULIT"


def test_table_cells_on_baselines_a_third_of_an_em_apart_stay_apart() -> None:
    # Cells apart by their padding (0.45 em), the second aligned a third of an em higher.
    left, right = ROW
    right_x = 72 + lines_make.COURIER * 12 / 1000 * len(left) + 0.45 * 12
    data = one_page(lines_make.text_line(left, 72, 700, font="F2"),
                    lines_make.text_line(right, right_x, 704, font="F2"))
    assert page_texts(data) == [f"{right}\n{left}"]
    assert view_with("t.pdf", data).classification == "RAHSIA BESAR"


def test_many_raised_letters_are_read_in_one_pass() -> None:
    # Every other letter of a long line (far wider than the page) raised: one word,
    # built in O(n log n).
    word = "".join(f"({c}) Tj {4 if i % 2 == 0 else 0} Ts " for i, c in enumerate("SULIT" * 2000))
    start = time.monotonic()
    (text,) = page_texts(one_page(f"BT /F1 12 Tf 10 750 Td {word} ET"))
    assert text == "SULIT" * 2000
    assert time.monotonic() - start < 10


def test_lines_top_to_bottom_whatever_the_drawing_order() -> None:
    data = one_page(lines_make.text_line("bawah", 72, 100), lines_make.text_line("atas", 72, 700),
                    lines_make.text_line("tengah", 300, 400))
    assert page_texts(data) == ["atas\ntengah\nbawah"]


def test_the_same_glyphs_drawn_twice_read_once() -> None:
    # Fake bold: the text drawn again a fraction of a point to the right.
    data = one_page(lines_make.text_line("SULIT", 72, 700),
                    lines_make.text_line("SULIT", 72.3, 700))
    assert page_texts(data) == ["SULIT"]


@pytest.mark.parametrize("angle", [30.0, 45.0, 90.0, 300.0])
def test_rotated_watermark_is_one_line(angle: float) -> None:
    data = one_page(lines_make.text_line("Laporan.", 72, 740),
                    lines_make.glyph_by_glyph("RAHSIA", 200, 300, 60, angle=angle, reverse=True))
    texts = page_texts(data)
    assert texts and "RAHSIA" in texts[0].split("\n")
    assert view_with("w.pdf", data).classification == "RAHSIA"


def test_spaces_between_words_drawn_separately() -> None:
    data = one_page(lines_make.courier_row("Minit", "mesyuarat", 0.3),
                    lines_make.text_line("A B", 72, 600))
    assert page_texts(data) == ["Minit mesyuarat\nA B"]


# -- scanned and blank pages ---------------------------------------------------------

def test_image_only_page_is_unreadable_and_blank_page_is_nothing() -> None:
    data = lines_make.hand_pdf([lines_make.text_line("Isi.", 72, 700), "",
                                lines_make.scanned_page()], image=True)
    got = [(p.rule, p.part, p.number) for p in pdf.pieces(data, documents.Bounds())]
    assert got == [("lines", "page", 1), ("unreadable", "page", 3)]


def test_image_only_pdf_is_unreadable_for_the_view() -> None:
    view = view_with("imbasan.pdf", (LINE_CASES / "Imbasan.pdf").read_bytes())
    assert view.attachments[0].unreadable == ("page1",)
    assert view.classification is None


def test_blank_pdf_is_neither_text_nor_unreadable() -> None:
    assert list(pdf.pieces(lines_make.hand_pdf(["", ""]), documents.Bounds())) == []


# -- encryption ------------------------------------------------------------------------

@pytest.mark.parametrize(("algorithm", "scheme"), [
    ("RC4-40", "pdf-rc4"), ("RC4-128", "pdf-rc4"), ("AES-128", "pdf-aes"),
    ("AES-256-R5", "pdf-aes"), ("AES-256", "pdf-aes")])
def test_encryption_scheme(algorithm: str, scheme: str) -> None:
    plain = lines_make.glyphs_case()
    locked = lines_make.encrypted(plain, user="buka123", owner="pemilik", algorithm=algorithm)
    assert pdf.encryption(locked) == (True, scheme)
    assert pdf.encrypted(locked) is True
    assert list(pdf.pieces(locked, documents.Bounds())) == []
    assert encryption.attachment_protection(locked, "application/pdf") == (True, scheme)
    owner_only = lines_make.encrypted(plain, user="", owner="pemilik", algorithm=algorithm)
    assert pdf.encryption(owner_only) == (False, None)
    assert view_with("o.pdf", owner_only).classification == "SULIT"


def test_plain_pdf_has_no_scheme() -> None:
    assert pdf.encryption(lines_make.glyphs_case()) == (False, None)


@pytest.mark.parametrize(("encrypt", "scheme"), [
    ({"/V": 1}, "pdf-rc4"),
    ({"/V": 2}, "pdf-rc4"),
    ({"/V": 5}, "pdf-aes"),
    ({"/V": 4, "/CF": {"/StdCF": {"/CFM": "/AESV2"}}, "/StmF": "/StdCF", "/StrF": "/StdCF"},
     "pdf-aes"),
    ({"/V": 4, "/CF": {"/StdCF": {"/CFM": "/V2"}}, "/StmF": "/StdCF", "/StrF": "/StdCF"},
     "pdf-rc4"),
    ({"/V": 4, "/CF": {"/A": {"/CFM": "/AESV2"}, "/R": {"/CFM": "/V2"}}, "/StmF": "/A",
      "/StrF": "/R"}, "pdf-rc4"),  # the weaker names it
    ({"/V": 4, "/CF": {}, "/StmF": "/Identity", "/StrF": "/Identity"}, None),
    ({"/V": 4}, None),
    ({"/V": 3}, None),
    ({"/V": "x"}, None),
])
def test_scheme_of_the_encrypt_dictionary(encrypt: dict[str, object], scheme: str | None
                                          ) -> None:
    assert pdf.scheme_of(encrypt) == scheme


# -- bounds, damage, threads -----------------------------------------------------------

def test_the_corpus_document_over_the_page_bound_is_not_inspectable() -> None:
    data = (LINE_CASES / "Muka-101.pdf").read_bytes()
    # Within the shipped bound every page is read, the last one included.
    assert [p.number for p in documents.pieces(data, documents.Bounds())
            if "SULIT" in p.text] == [101]
    small = replace(DEFAULT_LIMITS, max_pdf_pages=100)
    with pytest.raises(documents.LimitExceeded, match="101 pages"):
        list(documents.pieces(data, documents.Bounds(small)))
    view = MessageView(wrap("m.pdf", data), limits=small)
    _ = view.classification
    assert not view.complete


def test_a_deflate_bomb_is_not_handed_to_pdfium(monkeypatch: pytest.MonkeyPatch) -> None:
    # PDFium inflates a stream whole without a cap: pypdf measures it first.
    monkeypatch.setattr(pdf, "MAX_STREAM_BYTES", 1024 * 1024)
    bomb = lines_make.hand_pdf([lines_make.text_line("SULIT", 72, 700) + " " * 2 * 1024 * 1024],
                               deflate=True)
    assert len(bomb) < 10_000
    with pytest.raises(documents.LimitExceeded, match="decompresses beyond 1048576"):
        list(pdf.pieces(bomb, documents.Bounds()))
    fine = lines_make.hand_pdf([lines_make.text_line("SULIT", 72, 700) + " " * 1000],
                               deflate=True)
    assert page_texts(fine) == ["SULIT"]


def test_all_streams_of_a_document_are_bounded_together(monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    monkeypatch.setattr(pdf, "MAX_DOCUMENT_STREAM_BYTES", 1024 * 1024)
    page = lines_make.text_line("Isi", 72, 700) + " " * 300 * 1024
    with pytest.raises(documents.LimitExceeded, match="streams decompress beyond"):
        list(pdf.pieces(lines_make.hand_pdf([page] * 4, deflate=True), documents.Bounds()))
    assert len(page_texts(lines_make.hand_pdf([page] * 3, deflate=True))) == 3


def test_too_many_characters_on_a_page(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pdf, "MAX_PAGE_CHARS", 10)
    with pytest.raises(documents.LimitExceeded, match="page 1 has more than 10"):
        list(pdf.pieces(make.pdf(("Laporan Audit Dalaman",)), documents.Bounds()))


def test_page_text_is_charged_to_the_budget() -> None:
    bounds = documents.Bounds(budget=ExpansionBudget(5))
    with pytest.raises(documents.LimitExceeded, match="expand beyond"):
        list(pdf.pieces(make.pdf(("Laporan Audit Dalaman",)), bounds))


def test_waiting_for_pdfium_gives_up_at_the_deadline() -> None:
    data = make.pdf(("SULIT",))
    with pdf._PDFIUM:  # another thread is inside PDFium
        started = time.monotonic()
        with pytest.raises(documents.LimitExceeded, match="too long"):
            list(pdf.pieces(data, documents.Bounds(seconds=0.2)))
        assert time.monotonic() - started < 5


def test_readers_in_many_threads_agree() -> None:
    documents_ = [lines_make.glyphs_case(), lines_make.watermark_case(),
                  (LINE_CASES / "Jadual-RAHSIA-BESAR.pdf").read_bytes(),
                  (FIXTURES / "google-doc-document.pdf").read_bytes()]
    expected = [page_texts(d) for d in documents_]
    results: dict[int, list[list[str]]] = {}
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            results[n] = [page_texts(d) for d in documents_ for _ in range(5)][::5]
        except BaseException as e:  # reported below, in the test's thread
            errors.append(e)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert all(r == expected for r in results.values()) and len(results) == 8


def test_damaged_pdfs_never_raise() -> None:
    good = lines_make.hand_pdf([lines_make.glyph_by_glyph("SULIT", 280, 750),
                                lines_make.scanned_page()], image=True)
    damaged = [good[:cut] for cut in range(0, len(good), 37)]
    damaged += [good[:at] + b"\xff\x00(<<[" + good[at + 5:] for at in range(0, len(good), 53)]
    damaged.append(good.replace(b"/Count 2", b"/Count 99"))
    damaged.append(good.replace(b"/Kids [", b"/Kids [1 0 R "))  # a loop in the page tree
    for data in damaged:
        for piece in pdf.pieces(data, documents.Bounds()):
            assert piece.rule in ("lines", "unreadable")
        assert pdf.encryption(data)[0] in (False, None)
