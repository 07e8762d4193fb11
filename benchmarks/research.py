"""The source document's research directions, one change against the CPU default per row, each trained for the
same minutes from the same seed, sampled as the sample stage samples and scored as the evaluate stage scores.

    python benchmarks/research.py --row "default:" --row "lr 5e-5:train.lr=5e-5" \\
        --row "linear schedule:diffusion.beta_schedule=linear" --steps 1000 --out benchmarks/results/research

Each --row is NAME:SECTION.KEY=VALUE,... over params.yaml (values read as YAML: `[64,128]`, `true`, `1e-4`); a
row that changes only `sample.*` (and `noisy_classifier.*`) keys reuses the model its training keys already trained. Equal minutes: every
row's step time is probed over --probe steps; a row within --tolerance of the default's trains --steps steps,
any other trains the steps that fill the same minutes (grad accumulation, bigger nets, extra loss terms train
fewer; a row that sets `train.max_steps` trains exactly that); a row whose training then misses the default's minutes by more than --tolerance is retrained once
with its steps scaled by the miss; rows that change no COSTLY key train --steps without a probe. The first row must be the default (its floors and step time are the reference). Rows are appended to
rows.jsonl as they finish (a rerun skips names already there); models and samples go to --work.
`--figure` redraws table.md and samples.png from rows.jsonl without training.
"""

from __future__ import annotations

import json
import shutil
import statistics
from dataclasses import replace
from pathlib import Path

import click
import numpy as np
import yaml
from PIL import Image, ImageDraw
from quality_tone import cpu_name, measure

from devagen.commands.train import training_inputs
from devagen.core import paths
from devagen.core.io import write_text
from devagen.core.params import Params, params_from_dict
from devagen.core.sections import read_yaml
from devagen.data import prepared as data
from devagen.judges import legibility, ocr
from devagen.training.loop import train_diffusion

COLUMNS = [("C2ST, CNN", "c2st", -1), ("C2ST, tone", "tone_c2st", -1), ("precision", "precision", 1),
           ("recall", "recall", 1), ("legible", "legible_share", 1), ("OCR", "ocr_accuracy", 1),
           ("judge FID", "fid", -1), ("stroke width", "stroke_width_ratio", 0), ("ink", "ink_mass_ratio", 0)]
VERDICT_ON = ("c2st", "tone_c2st", "precision", "legible_share", "ocr_accuracy")  # the quality measures a row is judged by
COSTLY = ("model.", "augment.", "train.augment", "train.batch_size", "train.grad_accum", "diffusion.perceptual_weight",
          "diffusion.ssim_weight", "diffusion.adversarial_weight", "diffusion.learned_variance")  # change step time


def parse_row(spec: str) -> tuple[str, dict[str, object]]:
    """'NAME:section.key=value,...' -> (NAME, {'section.key': value}); commas inside [...] stay in the value."""
    name, _, rest = spec.partition(":")
    changes: dict[str, object] = {}
    depth, part = 0, ""
    for char in rest + ",":
        depth += char == "["
        depth -= char == "]"
        if char == "," and depth == 0:
            if part:
                key, sep, value = part.partition("=")
                if not sep or "." not in key:
                    raise click.BadParameter(f"{part!r} is not SECTION.KEY=VALUE", param_hint="--row")
                changes[key.strip()] = yaml.safe_load(value)
            part = ""
        else:
            part += char
    return name.strip(), changes


def with_changes(raw: dict, changes: dict[str, object]) -> Params:
    """params.yaml's mapping with the row's keys set, read and checked as params.yaml is."""
    raw = json.loads(json.dumps(raw))
    for key, value in changes.items():
        section, field = key.split(".", 1)
        raw.setdefault(section, {})[field] = value
    return params_from_dict(raw)


def train_key(changes: dict[str, object]) -> str:
    """The name of the model a row's training keys give (rows differing only in sample keys share it)."""
    keys = sorted((k, v) for k, v in changes.items() if not k.startswith(("sample.", "noisy_classifier.")))
    return "default" if not keys else "_".join(f"{k}={v}" for k, v in keys).replace(" ", "").replace("/", "-")


def train_model(params: Params, inputs: dict, steps: int, work: Path, name: str) -> dict:
    """Train `steps` steps from scratch into work/name/model; the loop's result dict."""
    folder = work / name
    shutil.rmtree(folder, ignore_errors=True)
    train = replace(params.train, max_steps=steps, epochs=0)
    return train_diffusion(train, params.model, params.diffusion, params.augment, inputs["images"], inputs["labels"],
                           folder / "model", folder / "checkpoints", progress=False, pen=inputs["pen"],
                           judge=inputs["judge"], vae=inputs["vae"])


def seconds_per_step(params: Params, inputs: dict, probe: int, work: Path) -> float:
    """Step time of this recipe, timed over the second half of a `probe`-step run (the first half warms up); without
    the guide snapshot (train.guide_step), which a run that short never reaches."""
    params = replace(params, train=replace(params.train, guide_step=0))
    half = train_model(params, inputs, probe // 2, work, "probe")["wall_s"]
    full = train_model(params, inputs, probe, work, "probe")["wall_s"]
    shutil.rmtree(work / "probe", ignore_errors=True)
    return max(full - half, 1e-6) / (probe - probe // 2)


def ensure_classifier(params: Params, folder: Path) -> None:
    """Classifier guidance's network in `folder`, trained as the noisy_classifier stage trains it unless one is there."""
    if (folder / "classifier.json").is_file():
        return
    from devagen.core.device import pick_device
    from devagen.diffusion.noisy_classifier import save_classifier, schedule_of
    from devagen.training.noisy_classifier import train_noisy_classifier

    train = data.load_split(paths.TRAIN_NPZ)
    net, _ = train_noisy_classifier(data.resize(train.images, params.prepare.image_size), train.labels,
                                    params.noisy_classifier, params.diffusion, pick_device(), progress=False)
    save_classifier(net, folder, params.noisy_classifier, schedule_of(params.diffusion))


def minutes_reference(row: dict) -> bool:
    """Whether the row trains the default for a set number of steps (`train.max_steps` only): the reference of rows
    sized to minutes."""
    return set(row["changes"]) == {"train.max_steps"}


def sized(row: dict) -> bool:
    """Whether the row's steps were sized to the default's minutes (it changes the step time)."""
    return "train.max_steps" not in row["changes"] and any(key.startswith(COSTLY) for key in row["changes"])


def verdicts(rows: list[dict]) -> dict[str, str]:
    """Per row: better / same / worse than the default on each quality measure, beyond the default seeds' range.
    Rows sized to minutes are held against the row that trains the default for those minutes on a quiet machine
    (`train.max_steps` only), where there is one; the others against the default seeds' mean."""
    base = [r for r in rows if r.get("default_seed")]
    if len(base) < 2:
        return {}
    minutes_ref = next((r for r in rows if minutes_reference(r)), None)
    out = {}
    for row in rows:
        marks = []
        for _, key, sign in COLUMNS:
            if key not in VERDICT_ON:
                continue
            values = [r[key] for r in base]
            centre = minutes_ref[key] if minutes_ref and sized(row) else statistics.mean(values)
            delta, spread = sign * (row[key] - centre), max(values) - min(values)
            marks.append("better" if delta > spread else "worse" if delta < -spread else "same")
        out[row["name"]] = ("worse" if "worse" in marks and "better" not in marks else
                            "mixed" if "worse" in marks else "better" if "better" in marks else "same")
    return out


def describe(changes: dict[str, object]) -> str:
    """A row's keys as table text; the augmentations switched off around the one measured are summed up."""
    off = [k for k, v in changes.items() if k.startswith("augment.") and k.endswith("_p") and v == 0]
    shown = [f"`{k}={v}`" for k, v in changes.items() if k not in off]
    return ", ".join(shown + (["the other augment `*_p` 0"] if off else [])) or "—"


def table(rows: list[dict]) -> str:
    """The study's Markdown table, the default seeds' mean and spread, and the floors."""
    def cell(value: object) -> str:
        return "—" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)

    verdict = verdicts(rows)
    head = ["row", "change"] + [label for label, _, _ in COLUMNS] + ["steps", "train min", "verdict"]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for r in rows:
        change = describe(r["changes"])
        lines.append(f"| {r['name']} | {change} | " + " | ".join(cell(r.get(key)) for _, key, _ in COLUMNS)
                     + f" | {r['steps']} | {r['train_minutes']:.1f} | "
                     + ("baseline" if r.get("default_seed") or minutes_reference(r)
                        else verdict.get(r["name"], "—") + (" ²" if sized(r) else "")) + " |")
    base = [r for r in rows if r.get("default_seed")]
    if len(base) >= 2:
        lines.append(f"| default, {len(base)} seeds: mean ± half-range | | " + " | ".join(
            f"{statistics.mean(r[k] for r in base):.3f} ± {(max(r[k] for r in base) - min(r[k] for r in base)) / 2:.3f}"
            for _, k, _ in COLUMNS) + " | | | |")
    floors = next((r for r in rows if r.get("floor_c2st") is not None), None)
    if floors:
        lines.append(f"| real vs real (floor) | | {cell(floors['floor_c2st'])} | {cell(floors['floor_tone_c2st'])} |"
                     + " |" * (len(COLUMNS) + 1))
    return "\n".join(lines) + "\n"


def figure(rows: list[dict], samples: Path, out: Path, real: data.Split, classes: int = 12, zoom: int = 2) -> None:
    """One line per row: its first sample of each of `classes` classes, at `zoom`x, the row's name on the left; a
    last line of real test images of the same classes, drawn at random."""
    label_w, side = 170, 32 * zoom
    wanted = list(range(0, 46, max(1, 46 // classes)))[:classes]
    lines = []
    for row in rows:
        with np.load(samples / f"{row['name'].replace(' ', '_')}.npz") as z:
            images, labels = z["images"], z["labels"]
        lines.append((row["name"], [images[np.flatnonzero(labels == c)[0]] for c in wanted]))
    rng = np.random.default_rng(0)
    lines.append(("real DHCD (random)", [real.images[rng.choice(np.flatnonzero(real.labels == c))] for c in wanted]))
    sheet = Image.new("L", (label_w + classes * side, len(lines) * side), 255)
    draw = ImageDraw.Draw(sheet)
    for i, (name, tiles) in enumerate(lines):
        for j, tile in enumerate(tiles):
            sheet.paste(Image.fromarray(tile).resize((side, side), Image.NEAREST), (label_w + j * side, i * side))
        draw.text((4, i * side + side // 2 - 6), name[:28], fill=0)
    sheet.save(out)


@click.command()
@click.option("--row", "specs", multiple=True, help="NAME:SECTION.KEY=VALUE,... (first: the default)")
@click.option("--steps", default=1000, show_default=True, help="the default's training steps")
@click.option("--probe", default=60, show_default=True, help="steps timed to size a row's training")
@click.option("--tolerance", default=0.15, show_default=True, help="share of the default's minutes a row may miss")
@click.option("--params", "params_path", default="params.yaml", show_default=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              default=Path("benchmarks/results/research"), show_default=True)
@click.option("--work", type=click.Path(file_okay=False, path_type=Path), default=Path("/tmp/research"),
              show_default=True)
@click.option("--classifier", type=click.Path(file_okay=False, path_type=Path), default=paths.NOISY_CLASSIFIER_DIR,
              show_default=True, help="noisy classifier folder for sample.guidance=classifier rows")
@click.option("--figure", "figure_only", is_flag=True, help="redraw table.md and samples.png only")
def main(specs: tuple[str, ...], steps: int, probe: int, tolerance: float, params_path: str, out: Path, work: Path,
         classifier: Path, figure_only: bool) -> None:
    """Train, sample and score each row in turn; rows.jsonl, table.md and samples.png in --out."""
    out.mkdir(parents=True, exist_ok=True)
    log = out / "rows.jsonl"
    rows = [json.loads(line) for line in log.read_text().splitlines()] if log.is_file() else []
    if not figure_only:
        raw = read_yaml(params_path)
        sets = {"train": data.load_split(paths.TRAIN_NPZ), "test": data.load_split(paths.TEST_NPZ),
                "judge": ocr.load_judge(paths.OCR_DIR), "ood": legibility.load_ood(paths.OCR_DIR)}
        base_sps = next((r["s_per_step"] for r in rows if r["name"] == "default"), None)
        for spec in specs:
            name, changes = parse_row(spec)
            if any(r["name"] == name for r in rows):
                continue
            params = with_changes(raw, changes)
            model = train_key(changes)
            folder = work / model
            trained = next((r for r in rows if r.get("model") == model and (folder / "model").is_dir()), None)
            if trained is None:
                inputs = training_inputs(params)
                fixed = changes.get("train.max_steps")  # a row that asks for its steps gets them, unsized
                costly = fixed is None and (any(key.startswith(COSTLY) for key in changes) or base_sps is None)
                sps = seconds_per_step(params, inputs, probe, work) if costly else base_sps
                base_sps = base_sps or sps
                row_steps = (int(fixed) if fixed is not None else steps if abs(sps / base_sps - 1) <= tolerance
                             else round(steps * base_sps / sps))
                result = train_model(params, inputs, row_steps, work, model)
                target = next((r["train_minutes"] * 60 for r in rows if r["name"] == "default"), result["wall_s"])
                if costly and abs(result["wall_s"] / target - 1) > tolerance:  # the probe missed: resize once
                    row_steps = round(row_steps * target / result["wall_s"])
                    result = train_model(params, inputs, row_steps, work, model)
                facts = {"steps": row_steps, "s_per_step": sps, "train_minutes": result["wall_s"] / 60,
                         "final_loss": result["final_loss"], "params": result["params"]}
            else:
                facts = {k: trained[k] for k in ("steps", "s_per_step", "train_minutes", "final_loss", "params")}
            if params.sample.guidance == "classifier":
                ensure_classifier(params, classifier)
            floor = not any(r.get("floor_c2st") is not None for r in rows)
            row = measure(name, params.sample, floor, params, sets, work / "samples", folder / "model", classifier)
            row.update(facts, changes=changes, model=model, cpu=cpu_name(),
                       default_seed=set(changes) <= {"train.seed"})
            rows.append(row)
            with log.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(row) + "\n")
            click.echo(table([row]).splitlines()[2], err=True)
    write_text(table(rows), out / "table.md")
    if rows and (work / "samples").is_dir():
        figure(rows, work / "samples", out / "samples.png", data.load_split(paths.TEST_NPZ))
    click.echo(table(rows))


if __name__ == "__main__":
    main()
