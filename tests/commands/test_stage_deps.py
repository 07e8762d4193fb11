"""Each DVC stage's deps in dvc.yaml list exactly the code the stage runs: `devagen <name>` runs cli.py, which
loads devagen/commands/<name>.py by name, and every src/devagen file that those import, directly or through other devagen modules, anywhere in a module (inside
functions too). Found by reading the sources with `ast`, so an edit reruns exactly the stages that run it."""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

import click
import pytest
import yaml

REPO = Path(__file__).parents[2]
SRC = REPO / "src"
STAGES = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def _module_name(path: Path, src: Path) -> str | None:
    """src/a/b.py -> 'a.b', src/a/__init__.py -> 'a'; None for a file outside src (a stage script)."""
    if not path.is_relative_to(src):
        return None
    parts = path.relative_to(src).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, src: Path) -> set[tuple[str, bool]]:
    """(dotted name, must exist) for every import in the file; `from m import x` also gives (m.x, False),
    since x may be a submodule."""
    name = _module_name(path, src)
    package = (name or "").split(".") if path.name == "__init__.py" else (name or "").split(".")[:-1]
    found: set[tuple[str, bool]] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {(alias.name, True) for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            found |= {(target, True)} | {(f"{target}.{alias.name}", False) for alias in node.names}
    return found


def _file(module: str, src: Path) -> Path | None:
    """The file that defines a dotted module name under src, if any."""
    base = src.joinpath(*module.split("."))
    return next((p for p in (base.with_suffix(".py"), base / "__init__.py") if p.is_file()), None)


def import_closure(roots: Iterable[Path], src: Path, package: str) -> set[Path]:
    """Every file of `package` (under src) that importing or running `roots` can execute: their imports of
    the package, transitively, with the __init__.py of each package on the way."""
    seen: set[Path] = set()
    todo = list(roots)
    while todo:
        path = todo.pop()
        for module, required in _imports(path, src):
            if module != package and not module.startswith(package + "."):
                continue
            parts = module.split(".")
            for depth in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__.py and a/b/__init__.py
                file = _file(".".join(parts[:depth]), src)
                if file is None and (required or depth < len(parts)):
                    raise LookupError(f"{path} imports {module}, which has no file under {src}")
                if file is not None and file not in seen:
                    seen.add(file)
                    todo.append(file)
    return seen


def holds_code(path: Path) -> bool:
    """False for a file of only a docstring and literal constants (a package's `__init__.py` here): editing it
    cannot change what a stage computes, so no stage lists it."""
    body = ast.parse(path.read_text(), str(path)).body
    inert = (ast.Expr, ast.Assign, ast.AnnAssign)
    return not all(isinstance(node, inert) and isinstance(node.value, ast.Constant) for node in body)


def stage_code(name: str) -> set[str]:
    """The src/devagen files stage `name` runs and that hold code: `devagen <name>` starts in devagen/cli.py,
    which loads devagen/commands/<name>.py by name."""
    command = SRC / "devagen" / "commands" / f"{name}.py"  # loaded by name (cli.load_command): no import names it
    roots = [SRC / "devagen" / "__init__.py", SRC / "devagen" / "cli.py", command]
    files = import_closure(roots, SRC, "devagen") | set(roots)
    return {p.relative_to(REPO).as_posix() for p in files if holds_code(p)}


@pytest.mark.parametrize("name", list(STAGES))
def test_stage_deps_are_exactly_the_code_it_runs(name: str) -> None:
    listed = {d for d in STAGES[name]["deps"] if d.startswith("src/")}
    runs = stage_code(name)
    missing, extra = sorted(runs - listed), sorted(listed - runs)
    assert not missing and not extra, (f"dvc.yaml stage {name}: missing deps {missing} (code it runs), "
                                       f"extra deps {extra} (code it does not run)")


@pytest.mark.parametrize("name", list(STAGES))
def test_stage_runs_its_own_command_module(name: str) -> None:
    from devagen.cli import cli

    assert STAGES[name]["cmd"] == f"devagen {name.replace('_', '-')}", f"stage {name} should run `devagen {name}`"
    command = cli.get_command(click.Context(cli), name.replace("_", "-"))
    assert command is not None and command.callback.__module__ == f"devagen.commands.{name}"


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)


def test_closure_follows_imports_anywhere_and_nothing_else(tmp_path: Path) -> None:
    src = tmp_path / "src"
    _write(src, {
        "pkg/__init__.py": "",
        "pkg/a.py": "import os\nfrom .b import f\n\ndef g():\n    from . import c\n    return c\n",
        "pkg/b.py": "def f():\n    import pkg.sub.d\n",
        "pkg/c.py": "from ..pkg.sub import e  # two levels up and down again\n",
        "pkg/sub/__init__.py": "",
        "pkg/sub/d.py": "",
        "pkg/sub/e.py": "from .. import b\nfrom . import d as renamed\n",
        "pkg/sub/unused.py": "",
        "pkg/unrelated.py": "import pkg.a\n",
        "pkg/cmd/__init__.py": "",
        "pkg/cmd/x.py": "",
    })
    script = tmp_path / "script.py"
    script.write_text("import sys\nfrom pkg.a import g\n")
    found = {p.relative_to(src).as_posix() for p in import_closure([script], src, "pkg")}
    assert found == {"pkg/__init__.py", "pkg/a.py", "pkg/b.py", "pkg/c.py", "pkg/sub/__init__.py",
                     "pkg/sub/d.py", "pkg/sub/e.py"}
    found = {p.relative_to(src).as_posix() for p in import_closure([src / "pkg/cmd/x.py"], src, "pkg")}
    assert found == set()  # a root's own package __init__ comes only through imports (the script's)


def test_only_files_without_code_are_left_out(tmp_path: Path) -> None:
    _write(tmp_path, {"doc.py": '"""Only a docstring."""\n__version__ = "1.0"\n', "empty.py": "",
                      "const.py": 'NAME = "x"\nLIMIT: int = 3\n', "code.py": '"""Doc."""\nfrom . import a\n',
                      "call.py": "X = len('ab')\n", "def.py": "def f():\n    pass\n"})
    assert [holds_code(tmp_path / f) for f in ("doc.py", "empty.py", "const.py")] == [False] * 3
    assert all(holds_code(tmp_path / f) for f in ("code.py", "call.py", "def.py"))


def test_every_package_init_is_left_out_only_while_it_holds_no_code() -> None:
    inits = sorted((SRC / "devagen").rglob("__init__.py"))
    assert len(inits) >= 10 and not any(holds_code(p) for p in inits), "an __init__.py with code must be listed"


def test_closure_rejects_an_import_of_a_missing_module(tmp_path: Path) -> None:
    src = tmp_path / "src"
    _write(src, {"pkg/__init__.py": "", "pkg/a.py": "from .gone import x\n"})
    with pytest.raises(LookupError, match=r"a\.py imports pkg\.gone"):
        import_closure([src / "pkg/a.py"], src, "pkg")


def test_listing_a_stage_dep_it_does_not_run_fails() -> None:
    runs = stage_code("report")
    assert "src/devagen/report/pages.py" in runs and "src/devagen/training/loop.py" not in runs
    assert "src/devagen/training/loop.py" in stage_code("train") and "src/devagen/report/pages.py" not in stage_code("train")


def test_fetch_runs_only_the_download_code() -> None:
    """Editing a pen measure, MLflow tracking or a network preset must not re-download DHCD."""
    modules = stage_code("fetch")
    assert len(modules) <= 10, sorted(modules)
    assert not {p for p in modules if p.split("/")[2] in ("pen", "judges", "diffusion", "sampling", "training")}
    assert not modules & {"src/devagen/core/tracking.py", "src/devagen/core/presets.py", "src/devagen/core/params.py"}
