"""`devagen ...`: the commands users type; each DVC stage (stages/<name>.py) runs one of them.

Each command: resolve paths -> load config -> one library call -> write outputs -> log.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from . import paths, tracking
from .config import Params, load_params
from .errors import DevagenError
from .integrity import FULL_DISK_ERRNOS
from .io import write_json

PARAMS_OPTION = click.option("--params", "params_path", default="params.yaml", show_default=True,
                             type=click.Path(dir_okay=False), help="params.yaml to read")


class _Group(click.Group):
    """Turns DevagenError into one line on stderr and exit status 1 (no traceback); a stage that stops
    on an error leaves its MLflow run FAILED (KILLED on Ctrl-C), not RUNNING."""

    def invoke(self, ctx: click.Context):  # type: ignore[no-untyped-def]
        try:
            return super().invoke(ctx)
        except DevagenError as exc:
            tracking.close_open_runs("FAILED")
            click.echo(f"error: {exc}", err=True)
            ctx.exit(getattr(exc, "exit_code", 1))  # 128 + signal for a run stopped by SIGTERM/SIGINT
        except OSError as exc:
            if exc.errno not in FULL_DISK_ERRNOS:
                raise
            click.echo(f"error: {exc.filename}: no space left on device; free some space, then re-run", err=True)
            ctx.exit(1)
        except KeyboardInterrupt:
            tracking.close_open_runs("KILLED")
            raise
        except Exception:
            tracking.close_open_runs("FAILED")
            raise


@click.group(cls=_Group)
@click.version_option(package_name="devagen")
def cli() -> None:
    """Train diffusion models that write handwritten Devanagari characters."""


def _params(path: str) -> Params:
    return load_params(Path(path))


@cli.command()
@click.option("--from", "local", type=click.Path(dir_okay=False), default=None,
              help="local copy of the DHCD zip (else $DHCD_ARCHIVE, else download)")
@PARAMS_OPTION
def fetch(local: str | None, params_path: str) -> None:
    """Put the validated DHCD archive at data/raw/."""
    from .fetch import fetch_archive

    params = _params(params_path)
    archive, counts = fetch_archive(params.fetch, paths.RAW_DIR, local=local)
    click.echo(f"fetch: {archive} ok ({counts['Train']} train + {counts['Test']} test images)")


@cli.command()
@PARAMS_OPTION
def prepare(params_path: str) -> None:
    """Decode the archive into data/prepared/{train,test}.npz, metrics and figures."""
    from . import data, figures
    from .augment import augment_preview
    from .classes import CLASS_NAMES, glyphs
    from .fetch import ARCHIVE_NAME

    params = _params(params_path)
    prepared = data.prepare(paths.RAW_DIR / ARCHIVE_NAME, params.data.image_size, params.data.dedupe, progress=True)
    data.save_split(prepared.train, paths.TRAIN_NPZ)
    data.save_split(prepared.test, paths.TEST_NPZ)
    stats = data.data_stats(prepared)
    write_json(stats, paths.METRICS_DIR / "data.json")
    rows = figures.class_rows(prepared.train.images, prepared.train.labels, glyphs(), per_class=12)
    figures.save_image(figures.labelled_rows(rows, title="DHCD train images, one row per class"),
                       paths.FIGURES_DIR / "dataset.png")
    originals = [images[0] for _, images in rows]
    import numpy as np

    copies = augment_preview(np.stack(originals), params.augment, copies=8, seed=0)
    aug_rows = [(g, np.concatenate([o[None], c])) for g, o, c in zip(glyphs(), originals, copies)]
    figures.save_image(figures.labelled_rows(aug_rows, title="original | 8 augmented copies"),
                       paths.FIGURES_DIR / "augment.png")
    click.echo(f"prepare: {stats['train']} train, {stats['test']} test, {len(CLASS_NAMES)} classes, "
               f"{stats['duplicates_removed']} duplicates removed from train")


@cli.command("train-ocr")
@PARAMS_OPTION
def train_ocr(params_path: str) -> None:
    """Train the OCR judge on real train images (+ its real-feature statistics); test accuracy into ocr.json."""
    from . import data, legibility, ocr
    from .io import write_csv
    from .metrics import per_class_rows

    params = _params(params_path)
    train, test = data.load_split(paths.TRAIN_NPZ), data.load_split(paths.TEST_NPZ)
    judge, result = ocr.train_judge(params.train_ocr, params.augment, train.images, train.labels,
                                    test.images, test.labels)
    legibility.save_ood(legibility.fit_judge_ood(judge, train.images, train.labels, params.train_ocr.ood_holdout,
                                                 params.train_ocr.seed), paths.OCR_DIR)
    ocr.save_judge(judge, paths.OCR_DIR, params.train_ocr, params.data.image_size)  # its manifest covers both
    write_json(result, paths.METRICS_DIR / "ocr.json")
    write_csv(per_class_rows(result["per_class_accuracy"]), paths.OCR_PER_CLASS)
    click.echo(f"train-ocr: judge test accuracy {result['test_accuracy']:.4f} in {result['train_seconds']:.0f} s")


@cli.command("style-net")
@PARAMS_OPTION
def style_net(params_path: str) -> None:
    """Train the style-space network (no augmentation: it sees pen width); into models/style_net/."""
    from . import data, style_space

    params = _params(params_path)
    train, test = data.load_split(paths.TRAIN_NPZ), data.load_split(paths.TEST_NPZ)
    space, result = style_space.train_style_space(params.style_net, train.images, train.labels,
                                                  test.images, test.labels)
    style_space.save_style_space(space, paths.STYLE_NET_DIR, params.style_net, params.data.image_size)
    write_json({k: v for k, v in result.items() if k != "per_class_accuracy"}, paths.METRICS_DIR / "style_net.json")
    click.echo(f"style-net: test accuracy {result['test_accuracy']:.4f} in {result['train_seconds']:.0f} s "
               f"on {result['train_images']} images")


class _StepLog:
    """Training curve rows, appended to a file that survives a kill so a resumed run keeps its history."""

    def __init__(self, path: Path, tracker) -> None:  # type: ignore[no-untyped-def]
        from .io import read_jsonl

        self.path, self.tracker = path, tracker
        self.earlier = read_jsonl(path)
        self.rows: list[dict] = []

    def __call__(self, metrics: dict, step: int) -> None:
        from .io import append_jsonl

        row = {"step": step, **{k: float(v) for k, v in metrics.items()}}
        self.rows.append(row)
        append_jsonl(row, self.path)
        self.tracker.log_metrics({f"train/{k}": v for k, v in metrics.items()}, step)

    def history(self, resumed_from: int) -> list[dict]:
        """Rows up to the checkpoint this run resumed from, then this run's rows."""
        return [r for r in self.earlier if r["step"] <= resumed_from] + self.rows


@cli.command()
@PARAMS_OPTION
def train(params_path: str) -> None:
    """Train the diffusion UNet; model into models/diffusion/, curves and metrics into reports/."""
    from . import data
    from .config import flatten
    from .device import pick_device
    from .io import write_csv
    from .training import train_diffusion

    params = _params(params_path)
    split = data.load_split(paths.TRAIN_NPZ)
    tracker = tracking.stage_run(params.tracking, flatten(params), "train", {"device": str(pick_device())})
    log = _StepLog(paths.CHECKPOINT_DIR / "log.jsonl", tracker)
    pen = data.read_pen(paths.TRAIN_NPZ, len(split.images)) if params.model.style_conditioning else None
    result = train_diffusion(params.train, params.model, params.diffusion, params.augment, split.images,
                             split.labels, paths.DIFFUSION_DIR, paths.CHECKPOINT_DIR, log_fn=log, pen=pen)
    write_csv(log.history(result["resumed_from_step"]), paths.TRAIN_LOG)
    write_json(result, paths.METRICS_DIR / "train.json")
    tracker.end_stage(paths.METRICS_FILES)
    click.echo(f"train: {result['steps']} steps, final loss {result['final_loss']:.4f}, "
               f"{result['img_per_s']:.1f} img/s on {result['device']}")


@cli.command()
@PARAMS_OPTION
def sample(params_path: str) -> None:
    """Draw the evaluation samples and the figures (samples, steps, denoising GIF, process)."""
    from . import data, figures, sampling
    from .config import flatten
    from .pipeline import load_pipeline, read_meta

    params = _params(params_path)
    cfg = params.sample
    pipeline = load_pipeline(paths.DIFFUSION_DIR, cfg.sampler, cfg.use_ema, with_guide=cfg.guidance == "autoguidance")
    meta = read_meta(paths.DIFFUSION_DIR)
    real = data.load_split(paths.TEST_NPZ) if meta.conditional else None  # read before minutes of sampling
    images, labels, stats = sampling.sample_set(pipeline, meta, cfg)
    _save_samples(images, labels)
    write_json(stats, paths.METRICS_DIR / "sample.json")
    fig = sampling.samples_figure(images, labels, meta.glyphs, real=None if real is None else (real.images, real.labels))
    figures.save_image(fig, paths.FIGURES_DIR / "samples.png")
    label = 0 if meta.conditional else None
    guidance = sampling.guidance_options(cfg)
    figures.save_image(sampling.steps_figure(pipeline, label, cfg.seed, **guidance), paths.FIGURES_DIR / "steps.png")
    trajectory = pipeline.trajectory(label, cfg.steps, generator=sampling.image_generators(cfg.seed, 0, 1),
                                     **guidance)
    figures.save_image(sampling.process_figure(trajectory), paths.FIGURES_DIR / "process.png")
    figures.save_gif(sampling.denoising_frames(trajectory), paths.FIGURES_DIR / "denoising.gif")
    tracker = tracking.stage_run(params.tracking, flatten(params), "sample")
    for name in ("samples.png", "steps.png", "process.png", "denoising.gif"):
        tracker.log_artifact(paths.FIGURES_DIR / name, "figures")
    tracker.end_stage(paths.METRICS_FILES)
    click.echo(f"sample: {stats['images']} images at {stats['images_per_s']:.2f} img/s ({stats['nfe']} NFE each)")


def _save_samples(images, labels) -> None:  # type: ignore[no-untyped-def]
    import numpy as np

    paths.SAMPLES_NPZ.parent.mkdir(parents=True, exist_ok=True)
    tmp = paths.SAMPLES_NPZ.with_name(".tmp-samples.npz")
    np.savez(tmp, images=images, labels=labels)
    tmp.replace(paths.SAMPLES_NPZ)


@cli.command()
@PARAMS_OPTION
def evaluate(params_path: str) -> None:
    """FID/KID/precision/recall in judge features with the real-data floor, OCR accuracy, legibility, pen style,
    style-space FID and C2ST -> eval.json."""
    from . import cas, data, figures, legibility, ocr, style_space, tracking
    from .classes import glyphs
    from .config import flatten
    from .evaluation import evaluate_samples, style_evaluation, style_space_metrics
    from .io import read_json, write_csv
    from .metrics import confusion_figure

    params = _params(params_path)
    samples, intended = data.read_labelled_images(paths.SAMPLES_NPZ, "sample", unlabelled_ok=True)
    judge, ood = ocr.load_judge(paths.OCR_DIR), legibility.load_ood(paths.OCR_DIR)
    train, test = data.load_split(paths.TRAIN_NPZ), data.load_split(paths.TEST_NPZ)
    cfg, say = params.evaluate, lambda msg: click.echo(f"evaluate: {msg}")
    result = evaluate_samples(judge, ood, samples, intended, train.images, test.images, cfg, say=say)
    result.metrics.update(cas.cas_metrics(params.train_ocr, params.augment, samples, intended, train, test,
                                          cfg.cas_epochs, cfg.cas_batch_size, cfg.seed, say) if cfg.cas
                          else {"cas_status": "off (evaluate.cas: false)"})
    say("pen style vs real test images (and the real-vs-real floor)")
    pen = style_evaluation(samples, intended, test.images, test.labels, glyphs(), cfg.seed)
    result.metrics.update(pen.metrics)
    figures.save_image(pen.figure, paths.FIGURES_DIR / "style.png")
    space = style_space.load_style_space(paths.STYLE_NET_DIR)
    result.metrics.update(style_space_metrics(space, samples, intended, train, test, cfg, params.c2st, say))
    ocr_metrics = paths.METRICS_DIR / "ocr.json"
    if ocr_metrics.is_file():
        result.metrics["judge_test_accuracy"] = read_json(ocr_metrics)["test_accuracy"]
    write_json(result.metrics, paths.METRICS_DIR / "eval.json")
    write_csv(result.per_class_rows, paths.EVAL_PER_CLASS)
    figures.save_image(confusion_figure(result.confusion, glyphs(), axes=result.confusion_axes),
                       paths.FIGURES_DIR / "confusion.png")
    tracker = tracking.stage_run(params.tracking, flatten(params), "evaluate")
    for name in ("confusion.png", "style.png"):
        tracker.log_artifact(paths.FIGURES_DIR / name, "figures")
    tracker.end_stage(paths.METRICS_FILES)
    m = result.metrics
    headline = (f"OCR {m['ocr_accuracy']:.4f}" if m["conditional"] else
                f"legible {m['legible_share']:.4f} (real {m['floor_legible_share']:.4f}), {m['class_coverage']}/46 classes")
    click.echo(f"evaluate: {headline}, FID {m['fid']:.3f} (real floor {m['floor_fid']:.3f}), "
               f"stroke width {_times(m['style_stroke_width_ratio'])} real (floor {_times(m['style_stroke_width_floor_ratio'])}), "
               f"style-space FID {m['space_fid']:.3f} (floor {m['floor_space_fid']:.3f}), "
               f"C2ST {m['c2st_accuracy']:.3f} (floor {m['floor_c2st_accuracy']:.3f})")


def _times(ratio: float | None) -> str:
    """1.213 -> '1.21x'; None (undefined, e.g. blank samples) -> 'n/a'."""
    return "n/a" if ratio is None else f"{ratio:.2f}x"


@cli.command()
@PARAMS_OPTION
def report(params_path: str) -> None:
    """Render reports/report.html and reports/report.md and log them to the MLflow run."""
    from . import report as rep
    from .config import flatten
    from .io import write_text
    from .modelcard import write_model_card

    params = _params(params_path)
    tracker = tracking.stage_run(params.tracking, flatten(params), "report")
    tracker.log_metrics_files(paths.METRICS_FILES)  # this run's row in the comparison table has its numbers
    runs = tracking.recent_runs(params.tracking, params.report.recent_runs)
    current = next((r["name"] for r in runs if r["run_id"] == tracker.run_id), None)
    rep.render_plots(Path("."))
    html, markdown = rep.build_report(rep.load_report_inputs(Path("."), flatten(params), runs, current))
    write_text(html, paths.REPORT_HTML)
    write_text(markdown, paths.REPORT_MD)
    card = write_model_card(paths.DIFFUSION_DIR, flatten(params), rep.read_metrics(Path(".")),
                            paths.FIGURES_DIR / "samples.png", current or "devagen")
    for path in (paths.REPORT_HTML, paths.REPORT_MD, card):
        tracker.log_artifact(path, "report")
    if params.tracking.log_model:
        sample_cfg = params.sample
        tracker.log_model(paths.DIFFUSION_DIR, sample_cfg.sampler, sample_cfg.use_ema,
                          {k: getattr(sample_cfg, k) for k in ("seed", "steps", "guidance_scale")})
    tracker.end_stage(paths.METRICS_FILES)
    click.echo(f"report: {paths.REPORT_HTML}, {paths.REPORT_MD} and the model card {card}")


@cli.command()
@click.option("--text", default=None, help='Devanagari characters to write in order, e.g. "क ख ग १ २ ३"')
@click.option("--class", "class_name", default=None, help="one class (glyph or DHCD folder name) for a grid")
@click.option("-n", "count", type=click.IntRange(1, 1024), default=16, show_default=True, help="images in the grid")
@click.option("--out", type=click.Path(dir_okay=False), required=True, help="PNG to write")
@click.option("--model", "model_dir", type=click.Path(file_okay=False), default=str(paths.DIFFUSION_DIR), show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--steps", type=click.IntRange(1, 1000), default=None, help="sampling steps (default: sample.steps)")
@click.option("--guidance", type=click.FloatRange(0, 50), default=None,
              help="guidance scale (default: sample.guidance_scale; the kind is sample.guidance)")
@click.option("--stroke", type=float, default=None,
              help="pen width as a multiple of the training set's median (1.0 = typical); style-conditioned models")
@click.option("--slant", type=float, default=None,
              help="slant in degrees from the character's typical slant (positive = leans further right); style-conditioned models")
@PARAMS_OPTION
def generate(text: str | None, class_name: str | None, count: int, out: str, model_dir: str, seed: int,
             steps: int | None, guidance: float | None, stroke: float | None, slant: float | None,
             params_path: str) -> None:
    """Write generated handwriting for people: a word (--text) or a grid (--class / -n)."""
    from . import figures
    from .pipeline import load_pipeline
    from .sampling import generate_class_grid
    from .text import generate_text

    from dataclasses import replace

    cfg = _params(params_path).sample
    cfg = replace(cfg, seed=seed, steps=steps or cfg.steps,
                  guidance_scale=cfg.guidance_scale if guidance is None else guidance)
    if text is not None and class_name is not None:
        raise DevagenError("generate: give either --text or --class, not both")
    pipeline = load_pipeline(Path(model_dir), cfg.sampler, cfg.use_ema, with_guide=cfg.guidance == "autoguidance")
    if text is not None:
        image = generate_text(pipeline, text, cfg, stroke=stroke, slant=slant)
    else:
        image = generate_class_grid(pipeline, class_name, count, cfg, stroke=stroke, slant=slant)
    figures.save_image(image, Path(out))
    click.echo(f"generate: wrote {out}")


data_group = click.Group("data", help="Dataset commands (aliases of the stage commands).")
data_group.add_command(fetch)
data_group.add_command(prepare)
cli.add_command(data_group)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    cli.main(args=argv, prog_name="devagen")


def run_stage(name: str) -> None:
    """Entry point of stages/<name>.py: the same command, named after the DVC stage."""
    main([name.replace("_", "-"), *sys.argv[1:]])
