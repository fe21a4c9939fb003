"""Attachments decoded while their message arrives, through the real gateway and its pool.

A spooled message's base64 parts are decoded as the DATA stream comes
in (gateway.message.prescan) into a private file beside the spool file; the
inspection process reads them there. What must hold: the verdicts are the
inspection's own (a RAHSIA attachment is refused, an innocent one relayed byte
for byte), the work is really done on the way (the metric counts the parts the
inspection took decoded), and nothing is left on disk after the transaction.
"""

from __future__ import annotations

import base64
import stat
from pathlib import Path

from gateway.policy_state import load_policy
from gateway.relay.smtp import dot_stuff
from gateway.service import Gateway

from .raw_client import open_transaction
from .support import FakeUpstream, in_thread, write_config
from .test_metrics import http_get, sample
from .test_spool import RAHSIA_RULE, BigUpstream, wait_for


def with_attachment(text: bytes, name: str = "laporan.txt") -> bytes:
    encoded = base64.encodebytes(text).replace(b"\n", b"\r\n")
    return (b"From: a@anm.gov.my\r\nTo: b@example.com\r\nSubject: Laporan\r\n"
            b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"sempadan\"\r\n"
            b"\r\n--sempadan\r\nContent-Type: text/plain\r\n\r\nLampiran.\r\n"
            b"--sempadan\r\nContent-Type: text/plain; name=\"" + name.encode() + b"\"\r\n"
            b"Content-Disposition: attachment; filename=\"" + name.encode() + b"\"\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\n" + encoded + b"--sempadan--\r\n")


FILLER = b"Mesyuarat jawatankuasa pembangunan daerah, perkara ke-%d.\r\n"


def filler(lines: int) -> bytes:
    return b"".join(FILLER % i for i in range(lines))


async def test_parts_decoded_on_arrival_give_the_inspections_verdicts(tmp_path: Path) -> None:
    upstream: FakeUpstream = BigUpstream()
    await upstream.start()
    spool = tmp_path / "spool"
    spool.mkdir()
    path = write_config(tmp_path, upstream=f"smtp://127.0.0.1:{upstream.port}",
                        rules=RAHSIA_RULE,
                        limits={"spool_threshold": "64KB", "spool_dir": str(spool),
                                "decode_on_arrival": True, "max_message_size": "8MB"},
                        extra={"metrics": {"listen": "127.0.0.1:0"}})
    gateway = Gateway(load_policy(path))
    await gateway.start()
    try:
        out = gateway.address("outbound")
        assert gateway.metrics_server is not None and gateway.metrics_server.address
        # The marking is on the attachment's last line: found only if the whole part
        # decoded on the way is the part.
        marked = with_attachment(filler(40000) + b"RAHSIA\r\n")
        innocent = with_attachment(filler(40000))
        modes: list[int] = []

        def send(msg: bytes) -> tuple[int, bytes]:
            with open_transaction(out) as c:
                c.send(dot_stuff(msg))
                # The decoded file is there before the final dot, private to the gateway.
                assert wait_for(lambda: any(p.suffix == ".dec" for p in spool.iterdir()))
                modes.extend(stat.S_IMODE(p.stat().st_mode) for p in spool.iterdir())
                c.send(b".\r\n")
                return c.reply()

        code, text = await in_thread(lambda: send(marked))
        assert code == 550 and b"rule=rahsia-dilarang" in text, text
        code, text = await in_thread(lambda: send(innocent))
        assert code == 250, text
        assert [m.data for m in upstream.messages] == [innocent]
        assert modes and set(modes) == {0o600}
        _status, metrics = await http_get(gateway.metrics_server.address, "/metrics")
        assert sample(metrics, "gateway_parts_decoded_on_arrival_total") == 2
        assert list(spool.iterdir()) == []
    finally:
        await gateway.stop()
        await upstream.stop()
