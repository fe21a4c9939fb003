"""A rejection log that cannot be written keeps its records, bounded, and says so.

Real failures root cannot bypass: the log's directory removed and replaced by a file
(ENOTDIR / EEXIST on re-creating it), and a path leading to /dev/full (ENOSPC).
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import pytest

from gateway.envelope import Envelope
from gateway.observe import rejection_log
from gateway.observe.rejection_log import RejectionLog, build_record
from gateway.policy.verdict import Reply

ENV = Envelope(direction="outbound", listener="outbound", client_ip="127.0.0.1",
               helo="client.test", mail_from="a@anm.gov.my", rcpt_to=("b@example.com",))


class Counts:
    def __init__(self) -> None:
        self.failed = 0
        self.dropped = 0

    def rejection_log_failed(self) -> None:
        self.failed += 1

    def rejection_log_dropped(self) -> None:
        self.dropped += 1


def record(ref: str) -> dict[str, object]:
    return build_record(event="reject", ref=ref, envelope=ENV, view=None, verdict=None,
                        reply=Reply(554, "5.7.1", ("x",)), rule_id="relay-access")


def refs(path: Path) -> list[str]:
    return [json.loads(line)["ref"] for line in path.read_text().splitlines() if line.strip()]


def test_directory_replaced_by_a_file_buffers_then_writes_in_order(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    logdir = tmp_path / "log"
    path = logdir / "r.jsonl"
    counts = Counts()
    log = RejectionLog(path, metrics=counts)
    log.write(record("R0"))
    assert refs(path) == ["R0"]
    # The directory goes away and a file takes its name: nothing can be created there.
    path.unlink()
    logdir.rmdir()
    logdir.write_text("not a directory")
    time.sleep(rejection_log.ROTATION_CHECK + 0.1)  # let the write notice the file is gone
    with caplog.at_level(logging.INFO, logger="gateway.rejection_log"):
        log.write(record("R1"))
        log.write(record("R2"))
        assert log.retry() is not None
    assert log.problem is not None and str(path) in log.problem
    assert (log.pending, counts.failed, counts.dropped) == (2, 2, 0)
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1  # once per failure episode, not per record
    # Back: the directory is there again; the records reach it in their order.
    logdir.unlink()
    logdir.mkdir()
    assert log.retry() is None
    assert refs(path) == ["R1", "R2"]
    assert log.pending == 0 and log.problem is None


def test_full_buffer_drops_the_oldest_and_counts_them(tmp_path: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "r.jsonl"
    os.symlink("/dev/full", path)
    counts = Counts()
    log = RejectionLog(path, metrics=counts, max_pending=3)
    with caplog.at_level(logging.ERROR, logger="gateway.rejection_log"):
        for i in range(5):
            log.write(record(f"R{i}"))
    assert (log.pending, log.dropped, counts.dropped, counts.failed) == (3, 2, 2, 5)
    assert "No space left on device" in (log.problem or "")
    messages = [r.getMessage() for r in caplog.records]
    assert sum("cannot be written" in m for m in messages) == 1
    assert sum("buffer full" in m for m in messages) == 1
    path.unlink()
    assert log.retry() is None
    assert refs(path) == ["R2", "R3", "R4"]


def test_records_lost_at_close_are_named_in_the_journal(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "r.jsonl"
    os.symlink("/dev/full", path)
    log = RejectionLog(path)
    log.write(record("R-lost"))
    with caplog.at_level(logging.ERROR, logger="gateway.rejection_log"):
        log.close()
    assert any("R-lost" in r.getMessage() and "lost" in r.getMessage()
               for r in caplog.records)


async def test_log_never_raises_into_the_front_end(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    os.symlink("/dev/full", path)
    log = RejectionLog(path)
    await log.log(event="reject", ref="R9", envelope=ENV, reply=Reply(550, "5.7.1", ("x",)),
                  rule_id="relay-sender", reason="sender domain is not an agency domain")
    assert log.pending == 1


def test_open_now_fails_where_no_file_can_be(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(OSError):
        RejectionLog(tmp_path / "file" / "r.jsonl").open_now()
