"""The one place a decision becomes SMTP reply text (proxy and milter alike).

Rule replies are the rule's own lines (Malay, then English) followed by a line
naming the rule and the log reference. The gateway's own refusals are here
too, so their wording is consistent and never carries internals (no exception
text, no paths, no upstream host names).
"""

from __future__ import annotations

from gateway.policy.verdict import Reply, Verdict
from gateway.sizes import format_size


def _clean(line: str) -> str:
    # A reply line must never carry CR/LF (reply injection) or control characters.
    return "".join(ch if ch.isprintable() else " " for ch in line).strip()


def render(reply: Reply) -> str:
    """Multi-line SMTP reply, every line repeating the code and enhanced code."""
    lines = [_clean(line) for line in reply.lines] or [""]
    out = []
    for i, line in enumerate(lines):
        sep = " " if i == len(lines) - 1 else "-"
        out.append(f"{reply.code}{sep}{reply.enhanced} {line}".rstrip())
    return "\r\n".join(out)


def for_verdict(verdict: Verdict, ref: str) -> Reply | None:
    """The reply for a reject/tempfail verdict, tagged with rule id and ref."""
    if verdict.reply is None:
        return None
    tail = f"rule={verdict.rule_id} ref={ref}" if verdict.rule_id else f"ref={ref}"
    return Reply(verdict.reply.code, verdict.reply.enhanced, (*verdict.reply.lines, tail))


def accepted(detail: str = "") -> Reply:
    return Reply(250, "2.0.0", (f"OK {detail}".strip(),))


def size_exceeded(limit: int, ref: str) -> Reply:
    size = format_size(limit)
    return Reply(552, "5.3.4", (
        f"Mesej melebihi had saiz {size}. Gunakan perkhidmatan pemindahan fail besar.",
        f"Message exceeds the size limit of {size}. Use the large-file transfer service.",
        f"rule=saiz-maksimum ref={ref}"))


def relay_denied(ref: str) -> Reply:
    return Reply(554, "5.7.1", (
        "Akses geganti ditolak.",
        "Relay access denied.",
        f"rule=relay-access ref={ref}"))


def sender_not_agency(ref: str) -> Reply:
    return Reply(550, "5.7.1", (
        "Penghantar mesti menggunakan alamat e-mel rasmi agensi.",
        "The sender must use the agency's official e-mail address.",
        f"rule=relay-sender ref={ref}"))


def bad_address(ref: str) -> Reply:
    return Reply(550, "5.1.3", (
        "Alamat ini tidak dibenarkan (penghalaan oleh penghantar: @, % atau ! dalam "
        "bahagian setempat, laluan sumber atau alamat IP literal).",
        "Address not allowed (sender-specified routing: @, % or ! in the local part, "
        "source route or address literal).",
        f"rule=relay-address ref={ref}"))


def too_many_recipients(limit: int) -> Reply:
    return Reply(452, "4.5.3", (
        f"Terlalu banyak penerima (had {limit}); hantar baki dalam transaksi lain.",
        f"Too many recipients (limit {limit}); send the rest in another transaction."))


def internal_error(ref: str) -> Reply:
    return Reply(451, "4.3.0", (
        "Ralat sementara di gerbang e-mel; sila cuba sebentar lagi.",
        "Temporary gateway error; please try again later.",
        f"ref={ref}"))


def not_inspectable(ref: str) -> Reply:
    return Reply(451, "4.3.0", (
        "Mesej tidak dapat diperiksa sekarang; sila cuba sebentar lagi.",
        "The message could not be inspected now; please try again later.",
        f"ref={ref}"))


def upstream_unavailable(ref: str) -> Reply:
    return Reply(451, "4.4.1", (
        "Pelayan mel seterusnya tidak dapat dihubungi; sila cuba sebentar lagi.",
        "The next mail server cannot be reached; please try again later.",
        f"ref={ref}"))


def upstream_tls_failed(ref: str) -> Reply:
    # 4.7.5 (RFC 3463: cryptographic failure): the message waits rather than travel
    # unencrypted when TLS to the next hop is required or was started.
    return Reply(451, "4.7.5", (
        "Sambungan TLS ke pelayan mel seterusnya gagal; sila cuba sebentar lagi.",
        "TLS to the next mail server failed; please try again later.",
        f"ref={ref}"))


def shutting_down() -> Reply:
    return Reply(421, "4.3.2", (
        "Gerbang e-mel sedang ditutup; sila cuba sebentar lagi.",
        "The gateway is shutting down; please try again later."))


def bare_newline(ref: str) -> Reply:
    # RFC 5321 2.3.8: CR and LF only together as CRLF; a next hop may read a bare one
    # as a line end (SMTP smuggling). 5.6.x: a problem with the content (RFC 3463 3.7).
    return Reply(550, "5.6.11", (
        "Mesej mengandungi CR atau LF tanpa pasangan (atau NUL); hantar dengan CRLF.",
        "Message contains a bare CR or LF (or NUL); send lines ending in CRLF.",
        f"rule=baris-tidak-sah ref={ref}"))


def too_many_connections() -> Reply:
    return Reply(421, "4.7.0", (
        "Terlalu banyak sambungan; sila cuba sebentar lagi.",
        "Too many connections; please try again later."))


def too_many_commands() -> Reply:
    return Reply(421, "4.7.0", (
        "Terlalu banyak arahan dalam sesi ini; sambungan ditutup.",
        "Too many commands in this session; closing the connection."))


def too_many_bad_commands() -> Reply:
    return Reply(421, "4.7.0", (
        "Terlalu banyak arahan yang salah; sambungan ditutup.",
        "Too many bad commands; closing the connection."))


def idle_timeout() -> Reply:
    return Reply(421, "4.4.2", (
        "Tiada aktiviti terlalu lama; sambungan ditutup.",
        "Idle for too long; closing the connection."))
