"""dvc.yaml agrees with the code: every stage's command module, params sections and paths exist."""

from __future__ import annotations

import typing
from pathlib import Path

import click
import yaml

from devagen.cli import cli
from devagen.core import paths
from devagen.core.params import Params

REPO = Path(__file__).parents[2]
STAGES = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def _names(entries: list) -> list[str]:
    return [next(iter(e)) if isinstance(e, dict) else e for e in entries]


def test_every_stage_has_its_module_and_command() -> None:
    for name, stage in STAGES.items():
        command = f"src/devagen/commands/{name}.py"
        assert stage["cmd"] == f"devagen {name.replace('_', '-')}" and (REPO / command).is_file(), name
        assert name.replace("_", "-") in cli.list_commands(click.Context(cli)), f"devagen has no `{name}` command"
        assert command in stage["deps"], f"{name} should depend on its own command module"


def test_every_params_key_exists() -> None:
    sections = typing.get_type_hints(Params)
    for name, stage in STAGES.items():
        for key in _names(stage.get("params", [])):
            section, _, field = key.partition(".")
            assert section in sections, f"{name}: params section {section!r} unknown"
            if field:
                assert field in typing.get_type_hints(sections[section]), f"{name}: {key} unknown"


def test_declared_outputs_match_library_paths() -> None:
    declared = {p for s in STAGES.values() for kind in ("outs", "metrics", "plots") for p in _names(s.get(kind, []))}
    for path in (paths.RAW_DIR, paths.PREPARED_DIR):
        assert str(path) in declared
    for dep in (d for s in STAGES.values() for d in s.get("deps", [])):
        produced = any(dep == p or dep.startswith(p + "/") for p in declared)
        assert produced or (REPO / dep).exists(), f"dependency {dep} is neither in the repo nor produced by a stage"


def test_style_space_is_a_stage_and_evaluate_reads_it() -> None:
    style, evaluate = STAGES["style_net"], STAGES["evaluate"]
    assert _names(style["outs"]) == [str(paths.STYLE_NET_DIR), str(paths.DETAILS_DIR / "style_net.json")]
    assert {"src/devagen/commands/style_net.py", "src/devagen/judges/style_space.py", "src/devagen/judges/ocr.py", "data/prepared"} <= set(
        style["deps"])
    assert {d for d in style["deps"] if not d.startswith("src/")} == {"data/prepared"}
    assert set(_names(style["params"])) == {"style_net"}  # DHCD's 32x32, whatever side the UNet works at
    assert {str(paths.STYLE_NET_DIR), "src/devagen/judges/style_space.py", "src/devagen/judges/c2st.py",
            "src/devagen/judges/ocr.py"} <= set(evaluate["deps"])
    assert {"evaluate", "c2st"} <= set(_names(evaluate["params"]))
    order = list(STAGES)
    assert order.index("prepare") < order.index("style_net") < order.index("evaluate")
