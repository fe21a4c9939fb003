"""The sender_auth condition: its parameters, its semantics, and that DNS is asked lazily.

The DNS behind it is real: tests/support/dns_server.py on loopback, through the
gateway's own Resolver and gateway.auth.authenticate. Results given directly
(AuthFacts.known) are used only where the check's own logic is under test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.auth import AuthResults, DmarcResult, SpfResult
from gateway.auth.facts import AuthFacts
from gateway.auth.resolver import Resolver
from gateway.config import GatewayConfig, load_config
from gateway.envelope import Envelope
from gateway.message.view import MessageView
from gateway.observe.rejection_log import build_record
from gateway.pipeline import inspect
from gateway.policy.checks import REGISTRY
from gateway.policy.checks.base import Context
from gateway.policy.engine import evaluate
from gateway.policy.rules import NEVER, RuleSet, builtin_lists, load_rules
from gateway.policy_state import PolicyState, load_policy_for
from gateway.problems import LoadError
from tests.support.dns_server import DnsServer

REPO = Path(__file__).resolve().parents[2]
CHECK = REGISTRY["sender_auth"]
BUILTINS = builtin_lists(("anm.gov.my",), ("hebahan@anm.gov.my",), ("127.0.0.0/8",))
ZONE = {
    "anm.gov.my": [("TXT", "v=spf1 ip4:127.0.0.1 -all")],
    "_dmarc.anm.gov.my": [("TXT", "v=DMARC1; p=reject")],
    "partner.example": [("TXT", "v=spf1 ip4:192.0.2.1 -all")],
}
MSG = (b"From: Hebahan <hebahan@anm.gov.my>\r\nTo: semua@anm.gov.my\r\n"
       b"Subject: Mesyuarat\r\nMessage-ID: <a@anm.gov.my>\r\n\r\nSalam.\r\n")


def env(mail_from: str = "hebahan@anm.gov.my", client_ip: str = "127.0.0.1",
        direction: str = "inbound") -> Envelope:
    return Envelope(direction=direction, listener="t", client_ip=client_ip,  # type: ignore[arg-type]
                    helo="mx.test", mail_from=mail_from, rcpt_to=("semua@anm.gov.my",))


def results(spf: str, dmarc: str) -> AuthResults:
    return AuthResults(SpfResult(spf, "anm.gov.my"),  # type: ignore[arg-type]
                       DmarcResult(dmarc, "anm.gov.my", "reject", spf == "pass"))  # type: ignore[arg-type]


def holds(value: Any, spf: str, dmarc: str) -> Any:
    view = MessageView(MSG)
    facts = AuthFacts.known(results(spf, dmarc), env(), view)
    return CHECK.evaluate(CHECK.validate(value), Context(view, env(), ("anm.gov.my",), facts))


def rules_dir(tmp_path: Path, text: str) -> Path:
    d = tmp_path / "rules"
    d.mkdir(exist_ok=True)
    (d / "10-a.yaml").write_text(text.lstrip("\n"), encoding="utf-8")
    return d


def load(tmp_path: Path, text: str) -> RuleSet:
    return load_rules(rules_dir(tmp_path, text), BUILTINS)


@pytest.fixture
def dns() -> Iterator[DnsServer]:
    with DnsServer(ZONE) as server:
        yield server


def resolver(server: DnsServer) -> Resolver:
    return Resolver(("127.0.0.1",), server.port, timeout=1.0)


# -- parameters --------------------------------------------------------------------------
@pytest.mark.parametrize(("value", "message"), [
    ("{spf: [passs]}", "unknown spf result 'passs'"),
    ("{dmarc: [softfail]}", "unknown dmarc result 'softfail'"),
    ("{dkim: [passs]}", "unknown dkim result 'passs'"),
    ("{dkim_aligned: yes please}", "dkim_aligned: expected true or false"),
    ("{arc: [pass]}", "unknown key(s) arc (known: spf, dkim, dkim_aligned, dmarc)"),
    ("{}", "expected {spf: [results], dkim: [results], dkim_aligned: true|false, dmarc:"),
    ("{spf: []}", "expected a non-empty list of spf results"),
    ("pass", "expected {spf: [results], dkim: [results]"),
])
def test_bad_parameters_are_load_errors_with_the_line(tmp_path: Path, value: str,
                                                      message: str) -> None:
    with pytest.raises(LoadError) as info:
        load(tmp_path, f"""
rules:
  - id: a
    action: tag
    tag: "[X]"
    when:
      null_sender: false
      sender_auth: {value}
""")
    (problem,) = info.value.problems
    assert problem.line == 7, problem
    assert message in problem.message, problem.message


def test_every_result_name_is_accepted_and_case_is_ignored(tmp_path: Path) -> None:
    rs = load(tmp_path, """
rules:
  - id: a
    action: tag
    tag: "[X]"
    when:
      sender_auth:
        spf: [PASS, fail, softfail, neutral, none, permerror, temperror]
        dmarc: pass
""")
    (leaf,) = [leaf for _, leaf in rs.leaves()]
    assert leaf.value.spf == frozenset({"pass", "fail", "softfail", "neutral", "none",
                                        "permerror", "temperror"})
    assert leaf.value.dmarc == frozenset({"pass"})


# -- semantics ---------------------------------------------------------------------------
def test_holds_when_every_given_key_matches() -> None:
    both = {"spf": ["pass"], "dmarc": ["pass"]}
    assert holds(both, "pass", "pass") == results("pass", "pass").as_dict()
    assert holds(both, "pass", "fail") is None
    assert holds(both, "fail", "pass") is None
    assert holds({"spf": ["fail", "softfail"]}, "softfail", "fail") is not None
    assert holds({"spf": ["fail", "softfail"]}, "neutral", "fail") is None
    assert holds({"dmarc": ["none", "fail"]}, "pass", "none") is not None
    assert holds({"dmarc": ["temperror"]}, "temperror", "temperror") is not None


def test_without_a_resolver_nothing_passes() -> None:
    view = MessageView(MSG)
    bare = Context(view, env(), ("anm.gov.my",))
    assert CHECK.evaluate(CHECK.validate({"spf": ["pass"]}), bare) is None
    got = CHECK.evaluate(CHECK.validate({"spf": ["temperror"], "dmarc": ["temperror"]}), bare)
    assert got is not None and got["spf"] == "temperror" and got["dmarc"] == "temperror"
    no_resolver = AuthFacts(None, env(), view)
    assert no_resolver.results.spf.result == "temperror"
    assert no_resolver.results.dmarc.from_domain == "anm.gov.my"


# -- real DNS ----------------------------------------------------------------------------
def test_real_lookups_pass_fail_and_misalignment(dns: DnsServer) -> None:
    res = resolver(dns)
    view = MessageView(MSG)
    ok = AuthFacts(res, env(), view).results
    assert (ok.spf.result, ok.dmarc.result) == ("pass", "pass")
    assert ok.spf.domain == "anm.gov.my" and ok.dmarc.spf_aligned
    wrong_ip = AuthFacts(res, env(client_ip="127.0.0.2"), view).results
    assert wrong_ip.spf.result == "fail" and wrong_ip.dmarc.result == "fail"
    # SPF passes for partner.example's own server, but From says anm.gov.my.
    spoof = AuthFacts(res, env(mail_from="x@partner.example", client_ip="192.0.2.1"),
                      view).results
    assert spoof.spf.result == "pass" and spoof.dmarc.result == "fail"
    assert not spoof.dmarc.spf_aligned


def test_dns_is_asked_only_when_a_rule_reaches_the_condition(tmp_path: Path,
                                                            dns: DnsServer) -> None:
    rs = load(tmp_path, """
rules:
  - id: cheap-first
    direction: inbound
    action: tag
    tag: "[X]"
    when:
      sender_in: [someone@else.example]
      sender_auth: {spf: [fail]}
  - id: also-cheap-first
    direction: inbound
    action: tag
    tag: "[Y]"
    when:
      all:
        - {subject_matches: "never-in-this-subject"}
        - {sender_auth: {spf: [pass]}}
""")
    facts = AuthFacts(resolver(dns), env(), MessageView(MSG))
    verdict = evaluate(rs, MessageView(MSG), env(), facts)
    assert verdict.hits == ()
    assert not facts.evaluated and facts.evaluated_results is None
    assert dns.queries == []


def test_results_are_looked_up_once_per_message(tmp_path: Path, dns: DnsServer) -> None:
    rs = load(tmp_path, """
rules:
  - id: first
    direction: inbound
    action: tag
    tag: "[A]"
    when: {sender_auth: {spf: [pass]}}
  - id: second
    direction: inbound
    action: tag
    tag: "[B]"
    when: {sender_auth: {dmarc: [pass]}}
""")
    # No resolver cache: every look-up reaches the wire, so the count is AuthFacts'.
    uncached = Resolver(("127.0.0.1",), dns.port, timeout=1.0, cache_size=0)
    facts = AuthFacts(uncached, env(), MessageView(MSG))
    verdict = evaluate(rs, MessageView(MSG), env(), facts)
    assert [h.rule_id for h in verdict.hits] == ["first", "second"]
    assert facts.evaluated
    assert dns.queries == [("anm.gov.my.", "TXT"), ("_dmarc.anm.gov.my.", "TXT")]
    # The same message asked again through a new AuthFacts goes to the wire again.
    assert AuthFacts(uncached, env(), MessageView(MSG)).results.spf.result == "pass"
    assert len(dns.queries) == 4


def test_an_empty_config_list_never_holds_instead_of_failing_the_load(tmp_path: Path) -> None:
    rs = load(tmp_path, """
rules:
  - id: relays
    action: tag
    tag: "[X]"
    when: {client_ip: "@hebahan_relays"}
""")
    assert rs.rules[0].when == NEVER
    assert evaluate(rs, MessageView(MSG), env()).hits == ()
    # A literal empty list is still a mistake in the rule file.
    with pytest.raises(LoadError):
        load(tmp_path, """
rules:
  - id: relays
    action: tag
    tag: "[X]"
    when: {client_ip: []}
""")
    full = load_rules(rules_dir(tmp_path, """
rules:
  - id: relays
    action: tag
    tag: "[X]"
    when: {client_ip: "@hebahan_relays"}
"""), builtin_lists(("anm.gov.my",), (), (), ("127.0.0.9/32",)))
    assert evaluate(full, MessageView(MSG), env(client_ip="127.0.0.9")).subject_tags == ("[X]",)
    assert evaluate(full, MessageView(MSG), env(client_ip="127.0.0.1")).subject_tags == ()


# -- the pipeline: verdict, log, Authentication-Results ---------------------------------
RULES = """
rules:
  - id: spf-gagal
    description: "SPF gagal"
    direction: inbound
    action: reject
    when:
      sender_in: [hebahan@anm.gov.my]
      sender_auth: {spf: [fail, softfail]}
    reply: {code: 550, enhanced: "5.7.1", text: {ms: SPF gagal., en: SPF failed.}}
  - id: pantau
    direction: inbound
    action: add_header
    header: {name: X-Semakan, value: ok}
    when: {sender_in: [rakan@anm.gov.my]}
"""


def policy(tmp_path: Path, server: DnsServer, **config: Any) -> PolicyState:
    settings = GatewayConfig.model_validate({
        "listeners": [{"name": "inbound", "listen": "127.0.0.1:0", "direction": "inbound"}],
        "upstream": "maildir:var/mail", "agency_domains": ["anm.gov.my"],
        "hebahan_senders": ["hebahan@anm.gov.my"], "hostname": "gw.anm.gov.my",
        "rules_dir": str(rules_dir(tmp_path, RULES)),
        "dns": {"nameservers": ["127.0.0.1"], "port": server.port, "timeout": 1},
        **config})
    return load_policy_for(settings)


def test_relayed_mail_gets_authentication_results_on_top_and_nothing_else(
        tmp_path: Path, dns: DnsServer) -> None:
    state = policy(tmp_path, dns)
    got = inspect(state, MSG, env())
    assert got.reply is None and got.relay_bytes is not None
    assert got.verdict.auth == results("pass", "pass").as_dict()
    first, rest = got.relay_bytes.split(b"\r\n", 1)
    while rest.startswith((b" ", b"\t")):  # the field's folded lines
        more, rest = rest.split(b"\r\n", 1)
        first += b"\r\n" + more
    assert rest == MSG
    assert first.startswith(b"Authentication-Results: gw.anm.gov.my;")
    assert all(len(line) <= 78 for line in first.split(b"\r\n"))
    unfolded = b" ".join(line.strip() for line in first.split(b"\r\n")).decode()
    assert "spf=pass" in unfolded and "smtp.mailfrom=hebahan@anm.gov.my" in unfolded
    assert "dmarc=pass" in unfolded and "header.from=anm.gov.my" in unfolded
    assert MessageView(got.relay_bytes).header_values("Authentication-Results")


def test_no_authentication_results_when_switched_off_or_not_evaluated(
        tmp_path: Path, dns: DnsServer) -> None:
    off = policy(tmp_path, dns, authentication_results=False)
    got = inspect(off, MSG, env())
    assert got.relay_bytes == MSG and got.verdict.auth is not None
    on = policy(tmp_path, dns)
    other = MSG.replace(b"hebahan@", b"rakan@")
    got = inspect(on, other, env(mail_from="rakan@anm.gov.my"))
    assert got.verdict.auth is None
    assert got.relay_bytes == b"X-Semakan: ok\r\n" + other
    assert dns.queries == [("anm.gov.my.", "TXT"), ("_dmarc.anm.gov.my.", "TXT")]


def test_the_rejection_log_names_the_rule_and_carries_the_results(
        tmp_path: Path, dns: DnsServer) -> None:
    state = policy(tmp_path, dns)
    e = env(client_ip="127.0.0.2")
    got = inspect(state, MSG, e)
    assert got.reply is not None and got.reply.code == 550
    assert got.reply.lines[-1] == f"rule=spf-gagal ref={got.ref}"
    record = build_record(event="reject", ref=got.ref, envelope=e, view=got.view,
                          verdict=got.verdict, reply=got.reply)
    record = json.loads(json.dumps(record))
    assert record["rule_id"] == "spf-gagal"
    assert record["evidence"]["spf"] == "fail" and record["evidence"]["spf_domain"] == \
        "anm.gov.my"
    assert record["auth"]["spf"] == "fail" and record["auth"]["dmarc"] == "fail"
    assert record["auth"]["from_domain"] == "anm.gov.my"


def test_reload_builds_a_new_resolver(tmp_path: Path, dns: DnsServer) -> None:
    first = policy(tmp_path, dns)
    second = policy(tmp_path, dns)
    assert first.resolver is not None and second.resolver is not None
    assert first.resolver is not second.resolver


# -- gateway check ------------------------------------------------------------------------
def test_gateway_check_looks_up_dns_with_the_given_helo_and_client_ip(
        tmp_path: Path) -> None:
    zone = {**ZONE, "mx.anm.gov.my": [("TXT", "v=spf1 ip4:127.0.0.3 -all")]}
    rules = rules_dir(tmp_path, """
rules:
  - id: spf-lulus
    direction: inbound
    action: add_header
    header: {name: X-Spf, value: lulus}
    when: {sender_auth: {spf: [pass], dmarc: [pass]}}
""")
    config = tmp_path / "gateway.yaml"
    message = tmp_path / "bounce.eml"
    message.write_bytes(MSG)
    with DnsServer(zone) as server:
        config.write_text(json.dumps({
            "listeners": [{"name": "in", "listen": "127.0.0.1:0", "direction": "inbound"}],
            "upstream": "maildir:var/mail", "agency_domains": ["anm.gov.my"],
            "rules_dir": str(rules),
            "dns": {"nameservers": ["127.0.0.1"], "port": server.port, "timeout": 1}}))

        def check(*extra: str) -> dict[str, Any]:
            proc = subprocess.run(
                [sys.executable, "-m", "gateway", "check", "--config", str(config),
                 "--direction", "inbound", "--mail-from", "<>", "--rcpt", "a@anm.gov.my",
                 "--json", *extra, str(message)],
                capture_output=True, timeout=60, cwd=REPO,
                env={**os.environ, "PYTHONPATH": str(REPO)})
            assert proc.returncode == 0, proc.stderr
            result: dict[str, Any] = json.loads(proc.stdout)
            return result

        ok = check("--helo", "mx.anm.gov.my", "--client-ip", "127.0.0.3")
        bad_ip = check("--helo", "mx.anm.gov.my", "--client-ip", "127.0.0.4")
    assert ok["auth"]["spf"] == "pass" and ok["auth"]["spf_domain"] == "mx.anm.gov.my"
    assert ok["auth"]["dmarc"] == "pass"
    assert [m["rule_id"] for m in ok["matched"]] == ["spf-lulus"]
    assert ok["matched"][0]["evidence"]["spf"] == "pass"
    assert bad_ip["auth"]["spf"] == "fail" and bad_ip["matched"] == []


# -- config -------------------------------------------------------------------------------
def test_config_keys_hebahan_relays_and_authentication_results(tmp_path: Path) -> None:
    base = ('listeners: [{name: o, listen: "127.0.0.1:1", direction: outbound}]\n'
            'upstream: "maildir:x"\nagency_domains: [anm.gov.my]\n')
    path = tmp_path / "gateway.yaml"
    path.write_text(base)
    default = load_config(path)
    assert default.hebahan_relays == () and default.authentication_results is True
    path.write_text(base + 'hebahan_relays: [127.0.0.5, "10.1.2.3/8", "2001:db8::/32"]\n'
                           "authentication_results: false\n")
    set_ = load_config(path)
    assert [str(n) for n in set_.hebahan_relays] == ["127.0.0.5/32", "10.0.0.0/8",
                                                     "2001:db8::/32"]
    assert set_.authentication_results is False
    path.write_text(base + "hebahan_relays: [127.0.0.5, bogus]\nauthentication_results: 2\n")
    with pytest.raises(LoadError) as info:
        load_config(path)
    found = [(p.line, p.message) for p in info.value.problems]
    assert (4, "hebahan_relays: bad IP address or network 'bogus': expected e.g. 10.1.2.3, "
               "10.0.0.0/8 or 2001:db8::/32") in found
    assert any(line == 5 and msg.startswith("authentication_results:") for line, msg in found)
