"""The man pages stay in step with the code: gateway(8) with the argparse parser of
gateway/cli.py, gateway.yaml(5) with the pydantic models of gateway/config.py.

gateway(8) documents each runnable subcommand as `.SS "gateway SUB..."` under
`.SH COMMANDS`, and each of its options and operands as the first word of the line
after a `.TP`. gateway.yaml(5) documents each top-level key as a `.TP` item under
`.SH TOP-LEVEL KEYS`, and each key of a nested section (a model inside the config,
also inside a list or an optional) under `.SS <dotted path>` in `.SH NESTED KEYS`.
Rendering and linting are checked where `make install` puts the pages
(tests/integration/test_systemd.py).
"""

from __future__ import annotations

import argparse
import itertools
import re
import types
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel

from gateway import cli
from gateway.config import GatewayConfig

MAN = Path(__file__).resolve().parents[2] / "man"


def _unescape(word: str) -> str:
    """A roff word as the reader sees it: `\\-` is `-`, font escapes dropped."""
    word = re.sub(r"\\f[BIRP]", "", word)
    return word.replace("\\-", "-").replace("\\e", "\\").strip('"')


def _sections(text: str, macro: str) -> dict[str, list[str]]:
    """The page's lines grouped under each `.SH`/`.SS` (per `macro`) heading."""
    out: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if line.startswith(macro + " "):
            current = out.setdefault(_unescape(line[len(macro) + 1:].strip()), [])
        elif macro == ".SS" and line.startswith(".SH "):
            current = None
        elif current is not None:
            current.append(line)
    return out


def _tp_items(lines: list[str]) -> list[str]:
    """The first word of the tag line of every `.TP` item."""
    items = []
    for before, tag in itertools.pairwise(lines):
        if before.strip() == ".TP":
            words = tag.split()
            if words and words[0] in (".B", ".BI", ".BR", ".I", ".IR", ".IB"):
                words = words[1:]
            if words:
                # `.IR LOG ...`: an operand that takes several
                more = "..." if words[1:2] == ["..."] else ""
                items.append(_unescape(words[0]) + more)
    return items


def _between(text: str, start: str, end: str | None) -> str:
    body = text.split(f".SH {start}\n", 1)[1]
    if end is not None:
        body = body.split(f".SH {end}\n", 1)[0]
    return body


# -- gateway(8) and cli.py ----------------------------------------------------------------
def _commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
              ) -> dict[str, set[str]]:
    """Each runnable subcommand ("rules diff") -> its option strings and operands
    (metavar, `...` after it when it takes several), --help left out."""
    out: dict[str, set[str]] = {}
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    for action in subs:
        for name, sub in action.choices.items():
            out.update(_commands(sub, (*path, name)))
    if subs:
        return out
    words: set[str] = set()
    for a in parser._actions:
        if isinstance(a, argparse._HelpAction):
            continue
        if a.option_strings:
            words.update(a.option_strings)
        else:
            metavar = a.metavar if isinstance(a.metavar, str) else a.dest
            words.add(metavar + ("..." if a.nargs in ("+", "*") else ""))
    out[" ".join(path)] = words
    return out


def _documented_commands(page: str) -> dict[str, set[str]]:
    commands = _sections(_between(page, "COMMANDS", "SIGNALS"), ".SS")
    return {name.removeprefix("gateway "): set(_tp_items(lines))
            for name, lines in commands.items()}


def test_gateway_8_documents_every_subcommand_and_option() -> None:
    page = (MAN / "gateway.8").read_text(encoding="utf-8")
    assert _documented_commands(page) == _commands(cli._parser())


def test_the_comparison_sees_a_missing_option() -> None:
    page = (MAN / "gateway.8").read_text(encoding="utf-8")
    parser = cli._parser()
    report = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)
                  ).choices["report"]
    report.add_argument("--not-in-the-man-page", metavar="X")
    assert _documented_commands(page) != _commands(parser)
    trimmed = page.replace(".TP\n.BI \\-\\-top \" N\"\n", "")
    assert "--top" not in _documented_commands(trimmed)["report"]


@pytest.mark.parametrize("section", ["NAME", "SYNOPSIS", "DESCRIPTION", "COMMANDS", "SIGNALS",
                                     "EXIT STATUS", "FILES", "SEE ALSO"])
def test_gateway_8_has_the_usual_sections(section: str) -> None:
    assert f"\n.SH {section}\n" in (MAN / "gateway.8").read_text(encoding="utf-8")


def test_gateway_8_signals_are_those_the_service_handles() -> None:
    page = (MAN / "gateway.8").read_text(encoding="utf-8")
    signals = set(re.findall(r"SIG[A-Z0-9]+", _between(page, "SIGNALS", "EXIT STATUS")))
    source = (Path(cli.__file__).parent / "service.py").read_text(encoding="utf-8")
    handled = set(re.findall(r"add_signal_handler\(signal\.(SIG[A-Z0-9]+)", source))
    assert handled and handled <= signals


# -- gateway.yaml(5) and config.py ---------------------------------------------------------
def _model_in(annotation: object) -> type[BaseModel] | None:
    """The config model inside a field's type (`X | None`, `tuple[X, ...]`), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is not None:
        for arg in typing.get_args(annotation):
            found = _model_in(arg)
            if found is not None:
                return found
    return None


def _keys(model: type[BaseModel]) -> list[str]:
    return [f.alias or name for name, f in model.model_fields.items()]


def _nested(model: type[BaseModel], prefix: str = "") -> dict[str, list[str]]:
    """Dotted section ("tls.upstream") -> its keys, for every model inside `model`."""
    out: dict[str, list[str]] = {}
    for name, field in model.model_fields.items():
        inner = _model_in(field.annotation)
        if inner is not None:
            path = prefix + (field.alias or name)
            out[path] = _keys(inner)
            out.update(_nested(inner, path + "."))
    return out


def test_gateway_yaml_5_documents_every_top_level_key() -> None:
    page = (MAN / "gateway.yaml.5").read_text(encoding="utf-8")
    documented = _tp_items(_between(page, "TOP-LEVEL KEYS", "NESTED KEYS").splitlines())
    assert sorted(documented) == sorted(_keys(GatewayConfig))


def test_gateway_yaml_5_documents_every_nested_key() -> None:
    page = (MAN / "gateway.yaml.5").read_text(encoding="utf-8")
    sections = _sections(_between(page, "NESTED KEYS", "FILES"), ".SS")
    documented = {name: sorted(_tp_items(lines)) for name, lines in sections.items()}
    expected = {name: sorted(keys) for name, keys in _nested(GatewayConfig).items()}
    assert documented == expected
    assert {"limits", "tls.upstream", "listeners.proxy_protocol"} <= set(expected)


def test_the_key_comparison_sees_a_new_field() -> None:
    class Grown(GatewayConfig):
        timezone_example: str = "Asia/Kuala_Lumpur"

    page = (MAN / "gateway.yaml.5").read_text(encoding="utf-8")
    documented = _tp_items(_between(page, "TOP-LEVEL KEYS", "NESTED KEYS").splitlines())
    assert sorted(documented) != sorted(_keys(Grown))
