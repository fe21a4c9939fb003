"""An enclosed message's bytes as the inspection reads them (gateway.message.mime
`_enclosed_text`, `_enclosed_bytes`): the same in every run, and as they came."""

from __future__ import annotations

import base64

from gateway.message import transfer
from gateway.message.view import MessageView


def test_an_enclosed_multipart_without_a_boundary_reads_the_same_every_time() -> None:
    # Found by the prescan fuzz target: the generator gave the enclosed multipart a
    # random boundary, so its file's bytes (and any fact of them) changed per run.
    raw = (b"Content-Type: message/rfc822\r\n\r\n"
           b'Content-Type: multipart/mixed; boundary=""\r\n'
           b"Content-Transfer-Encoding: base64\r\nnot a header line\r\n\r\n--\r\n\r"
           b"Content-Type: text/plain\r\nnot a header line\r\n\r\n\r\n--\r\n----\r\n")
    first = [(a.size, a.data()) for a in MessageView(raw).attachments]
    for _ in range(5):
        assert [(a.size, a.data()) for a in MessageView(raw).attachments] == first
    assert first  # the enclosed message is read as a file


def test_an_8bit_header_in_an_encoded_enclosed_message_is_read_as_it_came() -> None:
    # A message/rfc822 part in base64 (against RFC 2046 but sent) whose text holds a
    # header line with an 8-bit byte: the string generator made encoded words of it
    # (quadratic: a 16 KB line took 7 s, 64 KB past the inspection timeout), whose
    # letters base64 then decoded. Now its bytes are decoded as they came.
    payload = b"Laporan bulanan. " * 20
    text = b"X-Pad: \xe9" + b"p" * 16000 + b"\r\n\r\n" + base64.encodebytes(payload)
    raw = (b"From: a@x\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n"
           b"\r\n--b\r\nContent-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n"
           b"\r\n" + text + b"--b--\r\n")
    [attachment] = MessageView(raw).attachments
    assert attachment.data() == transfer.decode_base64(text)[0]
