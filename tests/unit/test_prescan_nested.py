"""Parts below the top level and quoted-printable texts read while the message arrives
(gateway.message.prescan): what is recorded, what the inspection takes, where it stops."""

from __future__ import annotations

import base64
import io

from gateway.message import prescan, transfer
from gateway.message.view import MessageView

HEAD = (b"From: a@anm.gov.my\r\nTo: b@example.com\r\nSubject: Laporan\r\n"
        b"MIME-Version: 1.0\r\n")
PAYLOAD = bytes(range(256)) * 64
ENCODED = base64.encodebytes(PAYLOAD).replace(b"\n", b"\r\n").rstrip(b"\r\n")
# Outlook's shape: quoted-printable bodies in an alternative, the file beside it.
PLAIN_QP = (b"Content-Type: text/plain; charset=\"us-ascii\"\r\n"
            b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
            b"Tuan,=20\r\n\r\nMaklumat ini diklasifikasikan sebagai:\r\n"
            b"SU=\r\nLIT\r\n\r\nSila rujuk https://www.anm.gov.my/=\r\nnota=3D1\r\n")
HTML_QP = (b"Content-Type: text/html; charset=\"us-ascii\"\r\n"
           b"Content-Transfer-Encoding: quoted-printable\r\n\r\n<p>SULIT</p>\r\n")
PDF = (b"Content-Type: application/pdf; name=\"nota.pdf\"\r\n"
       b"Content-Transfer-Encoding: base64\r\n\r\n" + ENCODED)


def multipart(boundary: bytes, *children: bytes, close: bool = True,
              subtype: bytes = b"mixed") -> bytes:
    body = b"".join(b"--" + boundary + b"\r\n" + child + b"\r\n" for child in children)
    return (b"Content-Type: multipart/" + subtype + b"; boundary=\"" + boundary
            + b"\"\r\n\r\n" + body + (b"--" + boundary + b"--\r\n" if close else b""))


def read(raw: bytes, step: int = 1000) -> tuple[prescan.Prescanned, prescan.Known]:
    sink = io.BytesIO()
    scan = prescan.Prescan(sink.write)
    for at in range(0, len(raw), step):
        scan.feed(raw[at:at + step])
    found = scan.result()
    decoded = sink.getvalue()
    return found, prescan.Known(raw, found, lambda o, n: decoded[o:o + n])


def facts(view: MessageView) -> object:
    return ([(a.filename, a.size, a.detected_type) for a in view.attachments],
            [(m.marking, m.where) for m in view.markings.found],
            [link.url for link in view.links])


def test_an_outlook_message_is_read_below_the_top_level() -> None:
    raw = HEAD + multipart(b"outer", multipart(b"alt", PLAIN_QP, HTML_QP,
                                               subtype=b"alternative"), PDF)
    found, known = read(raw)
    [text] = found.texts
    assert text.quoted and text.charset == "us-ascii"
    # The soft line break inside the marking and inside the link are decoded away.
    assert text.scanned.markings == ((4, "SULIT"),)
    assert text.scanned.urls == ("https://www.anm.gov.my/nota=1",)
    assert len(found.parts) == 1
    view = MessageView(raw, prescanned=known)
    assert facts(view) == facts(MessageView(raw))
    assert view.attachments[0].size == len(PAYLOAD)
    assert (known.used, known.scanned) == (1, 1)


def test_a_forwarded_message_s_attachment_is_decoded_on_the_way() -> None:
    inner = (b"Content-Type: message/rfc822\r\n\r\nFrom: c@example.org\r\nSubject: asal\r\n"
             + multipart(b"inner", PLAIN_QP, PDF))
    raw = HEAD + multipart(b"outer", b"Content-Type: text/plain\r\n\r\nLihat bawah.", inner)
    found, known = read(raw, 777)
    assert len(found.parts) == 1 and len(found.texts) == 2
    view = MessageView(raw, prescanned=known)
    assert facts(view) == facts(MessageView(raw))
    assert [(m.marking, m.where["at"]) for m in view.markings.found] == \
        [("SULIT", "forwarded:1:body")]
    assert (known.used, known.scanned) == (1, 2)


def test_an_enclosing_delimiter_ends_a_multipart_never_closed() -> None:
    raw = HEAD + multipart(b"outer", multipart(b"alt", PLAIN_QP, close=False), PDF)
    found, known = read(raw)
    assert len(found.parts) == 1 and len(found.texts) == 1
    view = MessageView(raw, prescanned=known)
    assert facts(view) == facts(MessageView(raw)) and known.used == 1


def test_an_inner_boundary_equal_to_the_outer_is_the_outer_s() -> None:
    # The final parse splits the outer body first: every `--b` line is the outer's, so
    # the inner closing line closes the outer, and the file after it is epilogue.
    raw = HEAD + multipart(b"b", multipart(b"b", PLAIN_QP), PDF)
    found, known = read(raw)
    view = MessageView(raw, prescanned=known)
    assert facts(view) == facts(MessageView(raw))
    assert found.parts == () and view.attachments == ()
    # The inner multipart's opening line is the outer's next delimiter: the text after
    # it is a part of the outer, read on the way.
    assert len(found.texts) == 1 and known.scanned == 1


def test_parts_deeper_than_max_levels_wait_for_the_dot() -> None:
    def nested(levels: int) -> bytes:
        tree = PDF
        for level in range(levels):
            tree = multipart(b"l%d" % level, tree)
        return HEAD + tree

    shallow, known = read(nested(prescan.MAX_LEVELS))
    assert len(shallow.parts) == 1
    assert MessageView(nested(prescan.MAX_LEVELS), prescanned=known).attachments[0].size \
        == len(PAYLOAD)
    deep, known = read(nested(prescan.MAX_LEVELS + 1))
    assert deep.parts == ()
    view = MessageView(nested(prescan.MAX_LEVELS + 1), prescanned=known)
    assert view.attachments[0].size == len(PAYLOAD) and known.used == 0


def test_a_quoted_printable_text_read_differently_is_scanned_again() -> None:
    raw = HEAD + multipart(b"outer", PLAIN_QP)
    found, _known = read(raw)
    assert len(found.texts) == 1
    # The same span read as 7bit: the findings of the decoded text do not apply.
    as_7bit = raw.replace(b"quoted-printable", b"7bit          ")
    known = prescan.Known(as_7bit, found, lambda _o, _n: b"")
    view = MessageView(as_7bit, prescanned=known)
    assert known.scanned == 0
    assert view.markings.found == ()  # "SU=" and "LIT" are not a marking


def test_quoted_printable_without_a_cut_gives_up_bounded() -> None:
    # Every line a soft break: no place to cut; past MAX_HELD the text is left to the
    # inspection after the dot, and the stream holds no more.
    stream = transfer.QuotedPrintableStream()
    line = b"x" * 70 + b"=\r\n"
    out = b"".join(stream.feed(line * 100) for _ in range(
        transfer.QuotedPrintableStream.MAX_HELD // (len(line) * 100) + 2))
    assert out == b"" and stream.broken
    raw = HEAD + multipart(b"outer", b"Content-Type: text/plain\r\n"
                           b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
                           + line * 20000 + b"\r\nSULIT")
    found, known = read(raw, 65536)
    assert found.texts == ()
    view = MessageView(raw, prescanned=known)
    assert [m.marking for m in view.markings.found] == ["SULIT"] and known.scanned == 0


def test_what_no_inspection_could_take_is_not_read() -> None:
    # A message/rfc822 in quoted-printable (against RFC 2046, but sent): the
    # inspection parses its decoded bytes anew, which hold no span of the message's:
    # not read inside.
    encoded_message = (b"Content-Type: message/rfc822\r\n"
                       b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
                       b"Subject: x\r\nContent-Type: text/plain\r\n\r\nSU=\r\nLIT\r\n")
    raw = HEAD + multipart(b"m", encoded_message, PLAIN_QP)
    found, known = read(raw)
    assert len(found.texts) == 1  # the text after it, not a text inside it
    assert facts(MessageView(raw, prescanned=known)) == facts(MessageView(raw))
    # A part the byte-level parse leaves to the feedparser (delivery-status; a header
    # block it refuses): the whole message is the feedparser's, whose parts have no
    # span, so the reading stops there and its process goes back.
    for refused in (b"Content-Type: message/delivery-status\r\n\r\nStatus: 5.0.0\r\n",
                    b"Content-Type: text/plain\rX-Bare: cr\r\n\r\nhi"):
        scan = prescan.Prescan(io.BytesIO().write)
        scan.feed(HEAD + multipart(b"m", refused, PLAIN_QP, PDF, close=False))
        assert scan.fruitless
