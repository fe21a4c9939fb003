"""Sender-specified routing in RCPT paths (issue 11 item 1): every form Postfix's
`allow_untrusted_routing = no` refuses, quoted, escaped or not, and the plain
addresses that must still pass."""

from __future__ import annotations

import pytest

from gateway.policy.relay_control import check_rcpt, routing_form, split_path

AGENCY = ["anm.gov.my"]


@pytest.mark.parametrize(("path", "form"), [
    ('<"victim@evil.example"@anm.gov.my>', "@ in the local part"),
    ('<"victim\\@evil.example"@anm.gov.my>', "@ in the local part"),
    ("<victim\\@evil.example@anm.gov.my>", "@ in the local part"),
    ("<victim@evil.example@anm.gov.my>", "@ in the local part"),
    ("<evil.example!victim@anm.gov.my>", "bang path"),
    ('<"evil.example!victim"@anm.gov.my>', "bang path"),
    ("<victim%evil.example@anm.gov.my>", "percent hack"),
    ('<"victim%evil.example"@anm.gov.my>', "percent hack"),
    ('<"vic\\%tim"@anm.gov.my>', "percent hack"),
    ("<@relay.example,@other.example:user@anm.gov.my>", "source route"),
    ("< @relay.example:user@anm.gov.my>", "source route"),
    ("<user@[192.0.2.1]>", "address literal"),
    ("<user@[IPv6:2001:db8::1]>", "address literal"),
    ('<"victim@evil.example"@anm.gov.my> NOTIFY=NEVER', "@ in the local part"),
])
def test_routing_forms_are_named(path: str, form: str) -> None:
    assert routing_form(path) == form


@pytest.mark.parametrize("path", [
    "<pegawai@anm.gov.my>",
    "<pegawai.kanan@kl.anm.gov.my>",
    '<"pegawai kanan"@anm.gov.my>',
    "<pegawai@anm.gov.my> ORCPT=rfc822;x@y>z",
    "<postmaster>",
    "pegawai@anm.gov.my",
])
def test_plain_addresses_pass(path: str) -> None:
    assert routing_form(path) is None


def test_split_path_reads_quoted_local_part_as_the_next_hop_does() -> None:
    assert split_path('<"a\\"b@c"@anm.gov.my>') == ('a"b@c', "@", "anm.gov.my")
    assert split_path("<postmaster>") == ("postmaster", "", "")


@pytest.mark.parametrize("direction", ["inbound", "outbound"])
def test_check_rcpt_refuses_routing_in_both_directions(direction: str) -> None:
    refusal = check_rcpt(direction=direction, recipient='"v@evil.example"@anm.gov.my',
                         path='<"v@evil.example"@anm.gov.my>', agency_domains=AGENCY)
    assert refusal is not None
    assert refusal.rule_id == "relay-address"
    reply = refusal.reply("R1")
    assert reply.code == 550 and reply.enhanced == "5.1.3"
    assert any("sender-specified routing" in line for line in reply.lines)
