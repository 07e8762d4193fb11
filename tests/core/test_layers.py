"""The library's packages stack in floors: a package imports only itself and packages on lower floors
(never upward, never sideways), so there is no import cycle between packages. Read from the sources with ast."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).parents[2] / "src" / "devagen"
FLOORS = {"core": 1, "report": 2, "pen": 2, "data": 3, "judges": 4, "diffusion": 4, "sampling": 5,
          "training": 6, "serving": 6, "commands": 7}
TOP_LEVEL = {"__init__", "cli", "pipeline", "model"}  # cli and the two names old model folders import


def _package(module: str) -> str:
    """'devagen.judges.ocr' -> 'judges'; a top-level module -> its own name."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _imports(path: Path) -> set[str]:
    """devagen modules/packages that the file imports (anywhere in it), as dotted names."""
    here = ["devagen", *path.relative_to(SRC).with_suffix("").parts]
    base = here if path.name == "__init__.py" else here[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("devagen.")}
        elif isinstance(node, ast.ImportFrom):
            root = base[:len(base) - node.level + 1] if node.level else []
            target = ".".join(root + ([node.module] if node.module else []))
            if target == "devagen":
                found |= {f"devagen.{a.name}" for a in node.names}
            elif target.startswith("devagen."):
                found.add(target)
    return found


def test_top_level_holds_only_the_cli_and_compatibility_modules() -> None:
    assert {p.stem for p in SRC.glob("*.py")} <= TOP_LEVEL
    assert {p.name for p in SRC.iterdir() if p.is_dir() and (p / "__init__.py").is_file()} == set(FLOORS)


@pytest.mark.parametrize("path", sorted(SRC.rglob("*.py")), ids=lambda p: p.relative_to(SRC).as_posix())
def test_imports_go_down_never_up_or_sideways(path: Path) -> None:
    own = path.relative_to(SRC).parts[0] if len(path.relative_to(SRC).parts) > 1 else None
    if own is None:
        return  # cli and the compatibility modules sit above the library
    wrong = sorted(m for m in _imports(path) if _package(m) != own and _package(m) in FLOORS
                   and FLOORS[_package(m)] >= FLOORS[own])
    assert not wrong, f"{path.relative_to(SRC)} ({own}, floor {FLOORS[own]}) imports {wrong}"


def test_no_module_is_over_450_lines() -> None:
    long = {p.relative_to(SRC).as_posix(): n for p in SRC.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 450}
    assert not long, long
