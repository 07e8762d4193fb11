"""The --params option every command takes, and which file this process read its params from."""

from __future__ import annotations

import click

PARAMS_OPTION = click.option("--params", "params_path", default="params.yaml", show_default=True,
                             type=click.Path(dir_okay=False), help="params.yaml to read")
READ_FROM = {"path": "params.yaml"}  # the params file this process's stage reads, for record_failure
