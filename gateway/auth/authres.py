"""The Authentication-Results header value (RFC 8601) for what the gateway verified.

    header_value("gw.example", results, mail_from="a@anm.gov.my", helo="mx.anm.gov.my")
    -> "gw.example; spf=pass smtp.mailfrom=a@anm.gov.my; dkim=none;
        dmarc=pass header.from=anm.gov.my"      (one line)

One `dkim=` result per DKIM-Signature field (RFC 8601 2.7.1), with `header.d`,
`header.s` and the start of the signature as `header.b` (RFC 6008) so two signatures
of one domain are told apart; `dkim=none` for a message without any. `arc=` (RFC 8617
10.1) only when the message carries an ARC chain: reported, not trusted.

One line: the transform that inserts it folds it. Nothing from the message or the
envelope can break out of its place: values are emitted bare only when they are an RFC
2045 token or a plain dot-atom address, otherwise as a quoted-string; CR, LF and every
other control or non-ASCII character is replaced before that. Reasons are our own words
(SpfResult.reason) and still go into a comment only when made of harmless characters.
"""

from __future__ import annotations

import re

from gateway.auth import AuthResults, DkimResult

_TOKEN = re.compile(r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+\Z")  # RFC 2045 token
_DOT_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~\-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~\-]+)*"
_ADDRESS = re.compile(rf"(?:{_DOT_ATOM})?@{_DOT_ATOM}\Z")
_SAFE_COMMENT = re.compile(r"[A-Za-z0-9 .,:=/_+\-]+\Z")


def _printable(text: str) -> str:
    """Printable ASCII only: controls (CR, LF, TAB...) and non-ASCII become '?'."""
    return "".join(c if 0x20 <= ord(c) < 0x7F else "?" for c in text)


def _value(text: str) -> str:
    """A pvalue: bare when it is a token or a dot-atom address, else a quoted-string."""
    clean = _printable(text)
    if clean and (_TOKEN.match(clean) or _ADDRESS.match(clean)):
        return clean
    return '"' + clean.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _comment(reason: str) -> str:
    clean = _printable(reason).strip()
    if clean and len(clean) <= 120 and _SAFE_COMMENT.match(clean):
        return f" ({clean})"
    return ""


def header_value(authserv_id: str, results: AuthResults, *, mail_from: str, helo: str) -> str:
    """`Authentication-Results:` value for SPF, DKIM, ARC and DMARC (RFC 8601 2.2),
    without CR/LF."""
    spf, dmarc = results.spf, results.dmarc
    # A null sender's SPF checked the HELO identity (RFC 7208 2.3).
    spf_prop = (f"smtp.mailfrom={_value(mail_from)}" if mail_from
                else f"smtp.helo={_value(helo)}")
    parts = [
        _value(authserv_id),
        f"spf={spf.result}{_comment(spf.reason)} {spf_prop}",
        *(_dkim(d) for d in results.dkim),
        *(() if results.dkim else ("dkim=none",)),
        *(() if results.arc == "none" else (f"arc={results.arc}",)),
        f"dmarc={dmarc.result}{_comment(_dmarc_comment(dmarc.policy))}"
        f" header.from={_value(dmarc.from_domain)}",
    ]
    return "; ".join(parts)


def _dkim(result: DkimResult) -> str:
    """`dkim=RESULT (reason) header.d=... header.s=... header.b=...`, present props only."""
    reason = "" if result.result == "pass" else _comment(result.reason)
    props = [f"header.{name}={_value(value)}"
             for name, value in (("d", result.domain), ("s", result.selector),
                                 ("b", result.b)) if value]
    return " ".join([f"dkim={result.result}{reason}", *props])


def _dmarc_comment(policy: str | None) -> str:
    return f"p={policy}" if policy else ""
