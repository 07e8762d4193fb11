"""`devagen ...`: the click group users type. Each command lives in devagen/commands/<name>.py and is
imported only when it runs (or its help is shown), so a DVC stage (`devagen <name>`) loads just its own
command's code, and dvc.yaml can list exactly that code as the stage's deps.
"""

from __future__ import annotations

import importlib
from typing import Any, Sequence

import click

from .core.errors import DevagenError, full_disk

# The commands' modules in devagen/commands/; the command is named after its module, with "-" for "_".
STAGES = ("fetch", "prepare", "train_ocr", "style_net", "vae", "train", "distill", "noisy_classifier", "sample",
          "evaluate", "report", "human_study")  # the DVC stages, in dvc.yaml's order
COMMANDS = (*STAGES, "generate", "human_score", "lr_find")


def load_command(module: str) -> click.Command:
    """The click command defined by devagen/commands/<module>.py (a function of the module's name)."""
    return getattr(importlib.import_module(f"{__package__}.commands.{module}"), module)


class LazyGroup(click.Group):
    """A click group whose commands (modules of devagen/commands) are imported on first use."""

    def __init__(self, *args: Any, lazy: Sequence[str] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = {module.replace("_", "-"): module for module in lazy}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        return load_command(self.lazy[name]) if name in self.lazy else super().get_command(ctx, name)


class _Group(LazyGroup):
    """Turns DevagenError (and a full disk) into one line on stderr and a non-zero exit status, no traceback.
    A stage's own command records the failure in its MLflow run first (devagen.commands.failure)."""

    def invoke(self, ctx: click.Context):  # type: ignore[no-untyped-def]
        try:
            return super().invoke(ctx)
        except DevagenError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(getattr(exc, "exit_code", 1))  # 128 + signal for a run stopped by SIGTERM/SIGINT
        except OSError as exc:
            message = full_disk(exc)
            if message is None:
                raise
            click.echo(f"error: {message}", err=True)
            ctx.exit(1)


@click.group(cls=_Group, lazy=COMMANDS)
@click.version_option(package_name="devagen")
def cli() -> None:
    """Train diffusion models that write handwritten Devanagari characters."""


cli.add_command(LazyGroup("data", lazy=("fetch", "prepare"), help="Dataset commands (aliases of the stage commands)."))


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    cli.main(args=argv, prog_name="devagen")

