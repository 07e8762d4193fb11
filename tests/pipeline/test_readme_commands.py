"""README's commands stay true: every `-S section.key=value` it names is a params key whose value loads, every
`devagen <command>` it shows exists with the options it uses, and every file it links to exists."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest
import yaml

from devagen.cli import cli
from devagen.core.params import params_from_dict

REPO = Path(__file__).parents[2]
README = (REPO / "README.md").read_text(encoding="utf-8")


def _overrides() -> list[str]:
    """Every section.key=value that README passes to -S (in code blocks and inline)."""
    return re.findall(r"-S '?([a-z_]+\.[a-z_0-9]+=[^\s'`]+)", README)


def test_every_readme_override_is_a_valid_params_value() -> None:
    found = _overrides()
    assert len(found) > 40  # the GPU commands alone set dozens
    base = yaml.safe_load((REPO / "params.yaml").read_text())
    for override in found:
        key, _, value = override.partition("=")
        section, name = key.split(".")
        assert name in base.get(section, {}), f"README: -S {override}: no such params key"
        raw = {s: dict(v) for s, v in base.items()}
        raw[section][name] = yaml.safe_load(value)
        try:
            params_from_dict(raw)
        except Exception as exc:  # noqa: BLE001 - a combination refused on its own is fine only if named
            assert key in str(exc) or "needs" in str(exc), f"README: -S {override}: {exc}"


def _devagen_lines() -> list[list[str]]:
    return [shlex.split(line.split("#")[0]) for line in re.findall(r"^devagen .*$", README, flags=re.MULTILINE)]


@pytest.mark.parametrize("args", _devagen_lines(), ids=lambda a: " ".join(a[:3]))
def test_every_readme_devagen_command_and_option_exists(args: list[str]) -> None:
    command = cli.get_command(click.Context(cli), args[1])
    assert command is not None, f"README: no command devagen {args[1]}"
    known = {opt for p in command.params for opt in getattr(p, "opts", [])}
    used = {a.split("=")[0] for a in args[2:] if a.startswith("--")}
    assert used <= known, f"README: devagen {args[1]} has no option {sorted(used - known)}"


def test_every_file_readme_links_to_exists() -> None:
    links = re.findall(r"\]\(([^)#\s]+)\)", README)
    assert links
    missing = [link for link in links if not link.startswith("http") and not (REPO / link).exists()]
    assert not missing, missing
