"""`gateway tls dev-cert` and the `tls:` config: files that load, refusals naming the line."""

from __future__ import annotations

import ipaddress
import ssl
import stat
from pathlib import Path

import pytest
import yaml
from cryptography import x509

from gateway.cli import main
from gateway.config import GatewayConfig, load_config
from gateway.problems import LoadError
from gateway.tls import client_context, server_context


def dev_cert(out: Path, *extra: str) -> int:
    return main(["tls", "dev-cert", "--out-dir", str(out), *extra])


def test_dev_cert_loads_and_names_the_host(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "tls"
    assert dev_cert(out, "--hostname", "mx.anm.gov.my", "--days", "30") == 0
    printed = capsys.readouterr().out
    cert_path, key_path = out / "gateway.crt", out / "gateway.key"
    # The printed lines are the config to paste.
    assert yaml.safe_load(printed)["tls"] == {"cert": str(cert_path), "key": str(key_path)}

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert_path, key_path)
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["mx.anm.gov.my"]
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert 30 <= lifetime.days <= 31
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600


def test_dev_cert_for_an_ip_address(tmp_path: Path) -> None:
    assert dev_cert(tmp_path, "--hostname", "127.0.0.1") == 0
    cert = x509.load_pem_x509_certificate((tmp_path / "gateway.crt").read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]


def test_dev_cert_refuses_to_overwrite_unless_forced(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert dev_cert(tmp_path, "--hostname", "a.test") == 0
    before = (tmp_path / "gateway.key").read_bytes()
    assert dev_cert(tmp_path, "--hostname", "b.test") == 2
    assert "--force" in capsys.readouterr().err
    assert (tmp_path / "gateway.key").read_bytes() == before
    assert dev_cert(tmp_path, "--hostname", "b.test", "--force") == 0
    assert (tmp_path / "gateway.key").read_bytes() != before
    assert stat.S_IMODE((tmp_path / "gateway.key").stat().st_mode) == 0o600


# -- config ------------------------------------------------------------------------------
BASE = """\
listeners: [{name: o, listen: "127.0.0.1:0", direction: outbound}]
upstream: smtp://127.0.0.1:25
agency_domains: [anm.gov.my]
"""


def load(tmp_path: Path, tls: str) -> GatewayConfig:
    path = tmp_path / "gateway.yaml"
    path.write_text(BASE + tls)
    return load_config(path)


def problems(tmp_path: Path, tls: str) -> list[str]:
    with pytest.raises(LoadError) as exc:
        load(tmp_path, tls)
    return [str(p) for p in exc.value.problems]


@pytest.fixture
def two_certs(tmp_path: Path) -> tuple[Path, Path]:
    a, b = tmp_path / "a", tmp_path / "b"
    assert dev_cert(a, "--hostname", "a.test") == 0
    assert dev_cert(b, "--hostname", "b.test") == 0
    return a, b


def test_config_tls_loads_into_contexts(tmp_path: Path, two_certs: tuple[Path, Path]) -> None:
    a, _ = two_certs
    config = load(tmp_path, f"tls:\n  cert: {a}/gateway.crt\n  key: {a}/gateway.key\n")
    ctx = server_context(config)
    assert ctx is not None and ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    assert server_context(config) is ctx  # cached per file version
    up = client_context(config.tls.upstream)
    assert up.verify_mode == ssl.CERT_REQUIRED and up.check_hostname
    assert up.minimum_version == ssl.TLSVersion.TLSv1_2


def test_config_without_tls_offers_none(tmp_path: Path) -> None:
    assert server_context(load(tmp_path, "")) is None


def test_config_relative_paths_resolve_against_cwd(
        tmp_path: Path, two_certs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = load(tmp_path, "tls: {cert: a/gateway.crt, key: a/gateway.key}\n")
    assert server_context(config) is not None


def test_config_key_not_matching_cert(tmp_path: Path, two_certs: tuple[Path, Path]) -> None:
    a, b = two_certs
    found = problems(tmp_path, f"tls:\n  cert: {a}/gateway.crt\n  key: {b}/gateway.key\n")
    assert found == [f"{tmp_path}/gateway.yaml:6: tls.key: key {b}/gateway.key "
                     f"does not match certificate {a}/gateway.crt"]


def test_config_missing_and_wrong_files(tmp_path: Path, two_certs: tuple[Path, Path]) -> None:
    a, _ = two_certs
    found = problems(tmp_path, f"tls:\n  cert: {a}/none.crt\n  key: {a}/gateway.key\n")
    assert found == [f"{tmp_path}/gateway.yaml:5: tls.cert: cannot read certificate "
                     f"{a}/none.crt: No such file or directory"]
    found = problems(tmp_path, f"tls:\n  cert: {a}/gateway.key\n  key: {a}/gateway.key\n")
    assert found[0].startswith(f"{tmp_path}/gateway.yaml:5: tls.cert: ")
    found = problems(tmp_path, f"tls:\n  cert: {a}/gateway.crt\n  key: {a}/gateway.crt\n")
    assert found[0].startswith(f"{tmp_path}/gateway.yaml:6: tls.key: ")


def test_config_unreadable_key(tmp_path: Path, two_certs: tuple[Path, Path]) -> None:
    a, _ = two_certs
    (a / "gateway.key").chmod(0)
    try:
        (a / "gateway.key").read_bytes()
        pytest.skip("running with privileges that read any file")
    except PermissionError:
        pass
    found = problems(tmp_path, f"tls:\n  cert: {a}/gateway.crt\n  key: {a}/gateway.key\n")
    assert found[0].startswith(f"{tmp_path}/gateway.yaml:6: tls.key: cannot read key")


def test_config_incomplete_or_unknown(tmp_path: Path, two_certs: tuple[Path, Path]) -> None:
    a, _ = two_certs
    assert problems(tmp_path, f"tls:\n  cert: {a}/gateway.crt\n") == [
        f"{tmp_path}/gateway.yaml:5: tls: cert and key go together: set both or neither"]
    assert problems(tmp_path, "tls:\n  require_starttls: true\n") == [
        f"{tmp_path}/gateway.yaml:5: tls: require_starttls needs a cert and key"]
    found = problems(tmp_path, "tls:\n  upstream:\n    mode: sometimes\n"
                               "    ca_file: /nonexistent/ca.pem\n    verfy: false\n")
    assert any(":6: tls.upstream.mode:" in p for p in found), found
    assert any(":7: tls.upstream.ca_file: cannot read CA file" in p for p in found), found
    assert any(":8: tls.upstream.verfy: unknown key" in p for p in found), found
