"""The gateway's own refusals: stable rule ids, the clause each enforces, and their text.

Shipped rules carry `id`, `reference` and a bilingual reply in their YAML; the
refusals the gateway makes by itself (relay control, the size hard limit, the
inspection and session limits, its own faults and the next hop's) have them here,
so that the reply (`rule=ID ref=...`), the rejection log (`rule_id`, `reference`),
the journal and the README table all name them the same way. An id here is never
reused for another meaning: help desks and reports key on it.

`logged` refusals end a transaction (or refuse an envelope address) and are
written to the rejection log with a ref; the others end a session before there is
a message (connection and command limits, idle time, shutdown) and appear in the
journal only, with their id. `ms` and `en` are `str.format` templates; the values
(`{size}`, `{limit}`) are given by `gateway.policy.replies`.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.policy.verdict import Reply

_PPPA = "PPPA Bil. 3 Tahun 2025, Lampiran A, "


@dataclass(frozen=True)
class Builtin:
    id: str
    code: int
    enhanced: str
    when: str  # for the README table: when the gateway answers this
    reference: str
    ms: str
    en: str
    logged: bool = True

    def reply(self, ref: str | None = None, **values: object) -> Reply:
        """The reply: Malay, English, then (for logged refusals) `rule=ID ref=REF`."""
        lines = [self.ms.format(**values), self.en.format(**values)]
        if ref is not None:
            lines.append(f"rule={self.id} ref={ref}")
        return Reply(self.code, self.enhanced, tuple(lines))


RELAY_ACCESS = Builtin(
    "relay-access", 554, "5.7.1",
    "outbound: the client is not in `relay_networks` (nor SMTP-authenticated, milter); "
    "inbound: a recipient outside `agency_domains` (at MAIL or RCPT; `<Postmaster>` "
    "without a domain is accepted, RFC 5321 4.5.1)",
    _PPPA + "1.2.2(b)(iv) dan 1.4.1(f)-(g)",
    "Akses geganti ditolak.",
    "Relay access denied.")
RELAY_SENDER = Builtin(
    "relay-sender", 550, "5.7.1",
    "outbound: the envelope sender's domain is not in `agency_domains` (at MAIL; the null "
    "sender `<>` may pass)",
    _PPPA + "1.2.2(b)(iv) dan 3.2.2(a)(i)(e); MAMPU 2007 3(c)-(e)",
    "Penghantar mesti menggunakan alamat e-mel rasmi agensi.",
    "The sender must use the agency's official e-mail address.")
RELAY_ADDRESS = Builtin(
    "relay-address", 550, "5.1.3",
    "a recipient with sender-specified routing: `@`, `%` or `!` in the local part, a source "
    "route or an address literal (at RCPT, every client)",
    _PPPA + "1.2.2(b)(iv) dan 1.4.1(f)-(g)",
    "Alamat ini tidak dibenarkan (penghalaan oleh penghantar: @, % atau ! dalam "
    "bahagian setempat, laluan sumber atau alamat IP literal).",
    "Address not allowed (sender-specified routing: @, % or ! in the local part, "
    "source route or address literal).")
SIZE = Builtin(
    "saiz-maksimum", 552, "5.3.4",
    "`SIZE=` at MAIL, or the data itself, above the largest message any rule allows "
    "(`limits.max_message_size`)",
    _PPPA + "1.2.2(a)(i)(e)(ii) dan 3.1.4(d)-(e)",
    "Mesej melebihi had saiz {size}. Gunakan perkhidmatan pemindahan fail besar.",
    "Message exceeds the size limit of {size}. Use the large-file transfer service.")
# 552 5.3.4 as for the message size (RFC 3463 5.3.4 "message too big for system"): a
# limit of ours, not malformed content (5.6.0 would send the sender looking for a
# syntax fault), and permanent, as the same message would only be refused again.
HEADER_TOO_LARGE = Builtin(
    "pengepala-terlalu-besar", 552, "5.3.4",
    "milter: a header field, or the header block of the message, above "
    "`limits.max_header_bytes` (answered at the end of the headers)",
    _PPPA + "1.4.1(c)-(d) dan 3.1.4(d)-(e)",
    "Pengepala mesej melebihi had saiz {limit}.",
    "The message header exceeds the size limit of {limit}.")
TOO_MANY_RECIPIENTS = Builtin(
    "penerima-terlalu-banyak", 452, "4.5.3",
    "a RCPT beyond `limits.max_recipients` in one transaction (that recipient only; the "
    "client sends the rest in another transaction)",
    _PPPA + "1.4.1(f)-(g); RFC 5321 4.5.3.1.8",
    "Terlalu banyak penerima (had {limit}); hantar baki dalam transaksi lain.",
    "Too many recipients (limit {limit}); send the rest in another transaction.",
    logged=False)
BARE_NEWLINE = Builtin(
    "baris-tidak-sah", 550, "5.6.11",
    "a bare CR, bare LF or NUL in DATA under `limits.bare_newlines: reject` (SMTP "
    "smuggling)",
    _PPPA + "1.4.1(f)-(g); RFC 5321 2.3.8",
    "Mesej mengandungi CR atau LF tanpa pasangan (atau NUL); hantar dengan CRLF.",
    "Message contains a bare CR or LF (or NUL); send lines ending in CRLF.")
NOT_INSPECTABLE = Builtin(
    "pemeriksaan-tidak-selesai", 451, "4.3.0",
    "the inspection ran past `limits.inspection_timeout`, or the message is beyond an "
    "inspection limit and no rule (`inspection_incomplete`) decided: never relayed unseen",
    _PPPA + "1.4.1(f)-(g)",
    "Mesej tidak dapat diperiksa sekarang; sila cuba sebentar lagi.",
    "The message could not be inspected now; please try again later.")
BUSY = Builtin(
    "gerbang-sibuk", 451, "4.3.2",
    "every inspection process is busy and the message could not get one, or the memory "
    "its inspection needs (`limits.inspection_memory`), within `limits.inspection_wait`; "
    "or the inspection queue (`limits.inspection_queue`) is full: never relayed uninspected",
    _PPPA + "1.4.1(d)",
    "Gerbang e-mel sedang sibuk; sila cuba sebentar lagi.",
    "The gateway is busy; please try again later.")
INTERNAL_ERROR = Builtin(
    "ralat-dalaman", 451, "4.3.0",
    "a fault of the gateway's own (the spool cannot be written or read, the inspection "
    "failed, the Maildir cannot be written); the cause is in the journal under the ref",
    _PPPA + "1.4.1(d) dan 1.4.1(g)",
    "Ralat sementara di gerbang e-mel; sila cuba sebentar lagi.",
    "Temporary gateway error; please try again later.")
UPSTREAM_UNAVAILABLE = Builtin(
    "pelayan-seterusnya-tiada", 451, "4.4.1",
    "the next server (`upstream`) cannot be reached, closes the connection or does not "
    "answer within `limits.upstream_timeout`",
    _PPPA + "1.4.1(d)",
    "Pelayan mel seterusnya tidak dapat dihubungi; sila cuba sebentar lagi.",
    "The next mail server cannot be reached; please try again later.")
UPSTREAM_TLS = Builtin(
    "pelayan-seterusnya-tls", 451, "4.7.5",
    "STARTTLS to the next server is required and not offered, or was started and failed "
    "(handshake, certificate): the message waits rather than travel unencrypted",
    _PPPA + "1.4.1(a)-(b)",
    "Sambungan TLS ke pelayan mel seterusnya gagal; sila cuba sebentar lagi.",
    "TLS to the next mail server failed; please try again later.")
TLS_REQUIRED = Builtin(
    "tls-diperlukan", 530, "5.7.0",
    "a command other than EHLO, HELO, NOOP, QUIT or STARTTLS before STARTTLS under "
    "`tls.require_starttls`",
    _PPPA + "1.4.1(a)-(b)",
    "Arahan STARTTLS mesti dihantar dahulu.",
    "Must issue a STARTTLS command first.", logged=False)
COMMAND_TOO_LONG = Builtin(
    "arahan-terlalu-panjang", 500, "5.5.2",
    "a command line longer than 512 octets (MAIL: 1024, room for ESMTP parameters); the "
    "session goes on",
    _PPPA + "1.4.1(c); RFC 5321 4.5.3.1.4",
    "Baris arahan terlalu panjang.",
    "Command line too long.", logged=False)
TOO_MANY_CONNECTIONS = Builtin(
    "sambungan-terlalu-banyak", 421, "4.7.0",
    "more than `limits.max_connections` sessions open, or `limits.max_connections_per_ip` "
    "from one address: refused before the greeting, closed",
    _PPPA + "1.4.1(c)-(d)",
    "Terlalu banyak sambungan; sila cuba sebentar lagi.",
    "Too many connections; please try again later.", logged=False)
TOO_MANY_COMMANDS = Builtin(
    "arahan-terlalu-banyak", 421, "4.7.0",
    "more than `limits.max_commands` commands in one session: closed",
    _PPPA + "1.4.1(c)-(d)",
    "Terlalu banyak arahan dalam sesi ini; sambungan ditutup.",
    "Too many commands in this session; closing the connection.", logged=False)
TOO_MANY_BAD_COMMANDS = Builtin(
    "arahan-salah-terlalu-banyak", 421, "4.7.0",
    "`limits.max_bad_commands` commands answered 500-504 (unknown, syntax, out of "
    "sequence, too long) in one session: closed",
    _PPPA + "1.4.1(c)-(d)",
    "Terlalu banyak arahan yang salah; sambungan ditutup.",
    "Too many bad commands; closing the connection.", logged=False)
IDLE_TIMEOUT = Builtin(
    "sesi-melahu", 421, "4.4.2",
    "no command for `limits.session_timeout` seconds (never while the gateway itself "
    "inspects or relays): closed",
    _PPPA + "1.4.1(c)-(d); RFC 5321 4.5.3.2",
    "Tiada aktiviti terlalu lama; sambungan ditutup.",
    "Idle for too long; closing the connection.", logged=False)
DATA_TOO_SLOW = Builtin(
    "data-terlalu-perlahan", 421, "4.4.2",
    "inside DATA, the client took longer than `limits.data_timeout` seconds, or sent "
    "less than `limits.data_min_rate` bytes a second over `limits.data_rate_window` "
    "(after `limits.data_rate_grace`): closed, nothing relayed",
    _PPPA + "1.4.1(c)-(d); RFC 5321 4.5.3.2",
    "Data mesej diterima terlalu perlahan; sambungan ditutup.",
    "Message data arrived too slowly; closing the connection.", logged=False)
SHUTTING_DOWN = Builtin(
    "gerbang-ditutup", 421, "4.3.2",
    "the gateway is stopping (SIGTERM) and the session is between transactions, or the "
    "TLS certificate cannot be loaded where TLS is required: closed",
    _PPPA + "1.4.1(d)",
    "Gerbang e-mel sedang ditutup; sila cuba sebentar lagi.",
    "The gateway is shutting down; please try again later.", logged=False)

ALL: tuple[Builtin, ...] = (
    RELAY_ACCESS, RELAY_SENDER, RELAY_ADDRESS, SIZE, HEADER_TOO_LARGE, TOO_MANY_RECIPIENTS,
    BARE_NEWLINE, NOT_INSPECTABLE, BUSY, INTERNAL_ERROR, UPSTREAM_UNAVAILABLE, UPSTREAM_TLS,
    TLS_REQUIRED,
    COMMAND_TOO_LONG, TOO_MANY_CONNECTIONS, TOO_MANY_COMMANDS, TOO_MANY_BAD_COMMANDS,
    IDLE_TIMEOUT, DATA_TOO_SLOW, SHUTTING_DOWN)
BY_ID: dict[str, Builtin] = {b.id: b for b in ALL}


def reference_of(rule_id: str | None) -> str | None:
    """The clause a built-in refusal enforces (None for any other id)."""
    found = BY_ID.get(rule_id) if rule_id is not None else None
    return found.reference if found is not None else None


def identify(reply: Reply) -> str | None:
    """The id of the built-in refusal a reply is (without values to fill in), else None."""
    for own in ALL:
        if (own.code, own.enhanced) == (reply.code, reply.enhanced) and "{" not in own.ms \
                and reply.lines[:2] == (own.ms, own.en):
            return own.id
    return None
