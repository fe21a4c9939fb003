"""The Authentication-Results value: RFC 8601 shape, quoting, and no header injection."""

from __future__ import annotations

import re

from gateway.auth import AuthResults, DmarcResult, SpfResult
from gateway.auth.authres import header_value


def results(spf: str = "pass", dmarc: str = "pass", *, spf_domain: str = "anm.gov.my",
            from_domain: str = "anm.gov.my", reason: str = "",
            policy: str | None = None) -> AuthResults:
    return AuthResults(SpfResult(spf, spf_domain, reason),  # type: ignore[arg-type]
                       DmarcResult(dmarc, from_domain, policy))  # type: ignore[arg-type]


def test_the_api_example() -> None:
    assert header_value("gw.example", results(), mail_from="a@anm.gov.my",
                        helo="mx.anm.gov.my") == \
        "gw.example; spf=pass smtp.mailfrom=a@anm.gov.my; dkim=none;" \
        " dmarc=pass header.from=anm.gov.my"


def test_null_sender_reports_helo_and_safe_reason_and_policy() -> None:
    value = header_value("gw.example",
                         results("fail", "fail", reason="SPF record evaluated to fail",
                                 policy="reject"),
                         mail_from="", helo="mx.example")
    assert value == ("gw.example; spf=fail (SPF record evaluated to fail) smtp.helo=mx.example;"
                     " dkim=none; dmarc=fail (p=reject) header.from=anm.gov.my")


def test_unsafe_reason_is_left_out() -> None:
    value = header_value("gw.example", results(reason="evil) x=y; (z\r\nX-Injected: 1"),
                         mail_from="a@anm.gov.my", helo="h")
    assert "evil" not in value and "X-Injected" not in value


def test_hostile_values_are_quoted_and_cannot_inject() -> None:
    hostile = 'x"@a.example\r\nX-Injected: yes; dmarc=pass'
    value = header_value("gw.example", results(from_domain="a.example\nBcc: x"),
                         mail_from=hostile, helo="h\r\n")
    assert "\r" not in value and "\n" not in value
    assert value.count(";") == 3 + hostile.count(";")  # only the separators are bare
    assert 'smtp.mailfrom="x\\"@a.example??X-Injected: yes; dmarc=pass"' in value
    assert 'header.from="a.example?Bcc: x"' in value
    # Every character is printable ASCII: nothing can end the header line.
    assert re.fullmatch(r"[\x20-\x7e]+", value)


def test_authserv_id_and_non_ascii_are_made_safe() -> None:
    value = header_value("gw example", results(from_domain="kementerian.gov.my"),
                         mail_from="pengarah@kewangan\u00e9.gov.my", helo="h")
    assert value.startswith('"gw example"; ')
    assert re.fullmatch(r"[\x20-\x7e]+", value)
