"""`devagen fetch` (DVC stage fetch): the validated DHCD archive at data/raw/."""

from __future__ import annotations

import click

from ..core import paths
from ..core.config import FetchConfig
from ..core.sections import load_section
from .options import PARAMS_OPTION


@click.command()
@click.option("--from", "local", type=click.Path(dir_okay=False), default=None,
              help="local copy of the DHCD zip (else $DHCD_ARCHIVE, else download)")
@PARAMS_OPTION
def fetch(local: str | None, params_path: str) -> None:
    """Put the validated DHCD archive at data/raw/."""
    from ..data.fetch import fetch_archive

    config = load_section(params_path, "fetch", FetchConfig)  # fetch reads only its own section
    archive, counts = fetch_archive(config, paths.RAW_DIR, local=local)
    click.echo(f"fetch: {archive} ok ({counts['Train']} train + {counts['Test']} test images)")
