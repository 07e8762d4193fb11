"""`devagen human-study` (DVC stage human_study): a blind study sheet for people (reports/human/sheet.html)
and its answer key (reports/human/key.json); `devagen human-score` scores the answers readers send back."""

from __future__ import annotations

import click

from ..core import paths
from ..core.integrity import replace_dir
from ..core.io import write_json, write_text
from .common import load
from .failure import StageCommand
from .options import PARAMS_OPTION

OUT = paths.HUMAN_DIR  # sheet.html and key.json (the key: keep it from the readers)
SHEET, KEY = "sheet.html", "key.json"
OFF_NOTE = "README.txt"


@click.command(cls=StageCommand)
@PARAMS_OPTION
def human_study(params_path: str) -> None:
    """Draw human_study.items glyphs, half generated and half real, into a blind sheet and its answer key."""
    from .optional import fresh_temp

    cfg = load(params_path).human_study
    tmp = fresh_temp(OUT)
    if not cfg.enabled:
        write_text("The human_study stage is off (human_study.enabled: false in params.yaml): no sheet.\n",
                   tmp / OFF_NOTE)
        replace_dir(tmp, OUT)
        click.echo("human_study: off (human_study.enabled: false)")
        return
    from ..core.classes import CLASS_NAMES, glyphs
    from ..data.prepared import read_labelled_images
    from ..judges.human_sheet import sheet_html
    from ..judges.human_study import answer_key, draw_sheet
    from ..report.figures import font_file

    generated, generated_labels = read_labelled_images(paths.SAMPLES_NPZ, "sample")
    real, real_labels = read_labelled_images(paths.TEST_NPZ, "prepare")
    sheet = draw_sheet(generated, generated_labels, real, real_labels, cfg.items, cfg.seed)
    write_text(sheet_html(sheet.images, sheet.sheet_id, glyphs(), CLASS_NAMES,
                                                 font_file().read_bytes()), tmp / SHEET)
    write_json(answer_key(sheet), tmp / KEY)
    replace_dir(tmp, OUT)
    click.echo(f"human_study: sheet {sheet.sheet_id} with {len(sheet.images)} items: send {OUT / SHEET} to "
               f"readers, keep {OUT / KEY}; score their answers with `devagen human-score FILE...`")
