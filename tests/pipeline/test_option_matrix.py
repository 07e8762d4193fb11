"""Every combination of the options that meet in training and sampling either works or is refused when params load.

The matrix: beta schedule x prediction type x network (pixels, 2x2 patches, latents, patches of latents) x
conditioning (none, class, class and pen, pen alone) x guidance (CFG; autoguidance with or without the guide
snapshot, train.guide_step; CFG plus autoguidance, sample.autoguidance_scale; classifier guidance with or without
the noisy classifier, noisy_classifier.enabled) x
sampler (the four, and the distilled students) x distillation on or off. Each
combination is first read by params_from_dict, as params.yaml is: a refusal must be one DevagenError line naming a
key. An accepted one runs what its stages run, through the same library calls (commands/vae, train, distill,
noisy_classifier and sample), on a `tiny` UNet at 16x16 that trains 2 steps and draws the first image of the sample
set in 2 steps (and the trajectory the figures show); nothing may fail once work has started.

Work is shared where the stages' inputs are equal: one training per (model, diffusion, vae, train, prepare) sections,
one distillation per trained model and distill section, one noisy classifier per schedule and image side, one
sampling run per trained model and sample section.
The fast tier runs cosine (the default) and sigmoid (the schedule the samplers get as explicit betas); linear and
scaled_linear, which reach the samplers by name as cosine does, run in the slow tier.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import torch

from devagen.core.config import PREDICTION_TYPES, SAMPLERS, SampleConfig

from devagen.core.params import Params
from devagen.core.errors import DevagenError
from devagen.core.params import params_from_dict, reads_guide
from devagen.diffusion.autoencoder import load_autoencoder, save_autoencoder, train_autoencoder
from devagen.diffusion.unet import condition
from devagen.pen.conditions import training_codes
from devagen.sampling.folder import read_meta
from devagen.diffusion.noisy_classifier import save_classifier, schedule_of
from devagen.sampling.generate import draws_classes, generate, guidance_options, image_generators
from devagen.sampling.pipeline import DevagenPipeline, load_pipeline
from devagen.sampling.students import SAMPLER as STUDENT_SAMPLER
from devagen.sampling.students import load_student, student_dir, write_student
from devagen.training.distill import DistillData, distill, fresh_student
from devagen.training.loop import train_diffusion
from devagen.training.noisy_classifier import train_noisy_classifier

pytestmark = pytest.mark.usefixtures("cpu_one_thread")

SCHEDULES = ("linear", "cosine", "sigmoid", "scaled_linear")
NETWORKS = {"pixels": {"model.preset": "tiny"}, "patches": {"model.preset": "tiny_patch"},
            "latents": {"model.preset": "tiny", "vae.enabled": True},
            "patched latents": {"model.preset": "tiny_patch", "vae.enabled": True}}
CONDITIONING = {"none": {"model.conditional": False, "model.style_conditioning": False},
                "class": {"model.conditional": True, "model.style_conditioning": False},
                "class and pen": {"model.conditional": True, "model.style_conditioning": True},
                "pen alone": {"model.conditional": False, "model.style_conditioning": True},
                "class, pen and layout": {"model.conditional": True, "model.style_conditioning": True,
                                          "model.layout_conditioning": True},
                "layout without the pen": {"model.conditional": True, "model.style_conditioning": False,
                                           "model.layout_conditioning": True}}
# guide_step comes with autoguidance (alone or added to CFG), which reads the guide; plain CFG never does (it is trained and sampled without one).
# Classifier guidance reads the noisy_classifier stage's network, trained when noisy_classifier.enabled.
GUIDANCE = {"cfg": {"sample.guidance": "cfg", "train.guide_step": 0},
            "autoguidance": {"sample.guidance": "autoguidance", "train.guide_step": 1},
            "autoguidance, no guide": {"sample.guidance": "autoguidance", "train.guide_step": 0},
            "cfg and autoguidance": {"sample.guidance": "cfg", "sample.autoguidance_scale": 2.0,
                                     "train.guide_step": 1},
            "classifier": {"sample.guidance": "classifier", "train.guide_step": 0, "noisy_classifier.enabled": True},
            "classifier, none": {"sample.guidance": "classifier", "train.guide_step": 0,
                                 "noisy_classifier.enabled": False}}
# Tiny sizes: 16x16 images, 2 training steps, one 2-step student, 2 sampler steps.
BASE = {"prepare": {"image_size": 16},
        "vae": {"steps": 1, "batch_size": 4, "width": 8, "downsample": 2, "precision": "fp32"},
        "train": {"max_steps": 2, "batch_size": 2, "warmup_steps": 0, "checkpoint_every": 100, "log_every": 1,
                  "ema_decay": 0.9, "augment": False, "mixed_precision": "no"},
        "sample": {"steps": 2, "per_class": 1, "count": 2, "batch_size": 64, "precision": "fp32",
                   "guidance_scale": 2.0},
        "distill": {"start_steps": 2, "min_steps": 2, "steps_per_round": 1, "batch_size": 2, "warmup_steps": 0,
                    "precision": "fp32", "per_class": 1},
        "noisy_classifier": {"steps": 1, "batch_size": 4, "width": 4},
        "tracking": {"enabled": False}}
RNG = np.random.default_rng(0)
LABELS = np.arange(46, dtype=np.int64)  # one image per class: pen pools and CFG see every class
IMAGES = RNG.integers(0, 256, (46, 16, 16), dtype=np.uint8)
PEN = np.stack([RNG.uniform(1.5, 3.0, 46), RNG.uniform(-15.0, 15.0, 46)], axis=1)  # stroke px, slant degrees


def raw_params(settings: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """params.yaml's mapping for BASE with `section.key` settings applied."""
    raw = {section: dict(values) for section, values in BASE.items()}
    for key, value in settings.items():
        section, name = key.split(".")
        raw.setdefault(section, {})[name] = value
    return raw


def combinations(schedule: str, network: str, conditioning: str) -> list[dict[str, Any]]:
    """The settings of every combination of the remaining axes for one schedule, network and conditioning."""
    rest = itertools.product(PREDICTION_TYPES, GUIDANCE, SAMPLERS, (False, True))
    return [{"diffusion.beta_schedule": schedule, **NETWORKS[network], **CONDITIONING[conditioning],
             "diffusion.prediction_type": prediction, **GUIDANCE[guidance], "sample.sampler": sampler,
             "distill.enabled": distilled}
            for prediction, guidance, sampler, distilled in rest]


def _key(*sections: Any) -> str:
    return json.dumps([asdict(s) for s in sections], sort_keys=True, default=str)


class Stages:
    """What the stages do for one params, each piece done once per distinct input (the memo)."""

    def __init__(self, root: Path) -> None:
        self.root, self.memo = root, {}
        self.counts = dict.fromkeys(("vae", "train", "distill", "classifier", "load", "sample", "figure"), 0)

    def once(self, kind: str, key: str, work: Callable[[Path], Any]) -> Any:
        """work(a fresh folder) the first time (kind, key) is asked for; its result afterwards."""
        if (kind, key) not in self.memo:
            self.counts[kind] += 1
            self.memo[kind, key] = work(self.root / f"{kind}-{self.counts[kind]}")
        return self.memo[kind, key]

    def vae(self, params: Params) -> Path:
        """commands/vae: the autoencoder trained on the images at the model's side, saved."""
        def work(out: Path) -> Path:
            autoencoder, _ = train_autoencoder(IMAGES, params.vae, torch.device("cpu"), progress=False)
            save_autoencoder(autoencoder, out)
            return out
        return self.once("vae", _key(params.vae, params.prepare), work)

    def train(self, params: Params) -> Path:
        """commands/train: the diffusion model folder (with the vae stage's autoencoder for latent diffusion)."""
        def work(out: Path) -> Path:
            vae = load_autoencoder(self.vae(params)) if params.vae.enabled else None
            pen = PEN if params.model.style_conditioning else None
            train_diffusion(params.train, params.model, params.diffusion, params.augment, IMAGES, LABELS,
                            out / "diffusion", out / "checkpoints", progress=False, pen=pen, vae=vae)
            return out / "diffusion"
        return self.once("train", self.train_key(params), work)

    @staticmethod
    def train_key(params: Params) -> str:
        return _key(params.model, params.diffusion, params.vae, params.train, params.prepare)

    def distill(self, params: Params) -> Path:
        """commands/distill: the students of the trained model, each drawing (the first image of) the stage's
        per-class measuring set."""
        def work(out: Path) -> Path:
            model_dir = self.train(params)
            meta, teacher = read_meta(model_dir), load_pipeline(model_dir, STUDENT_SAMPLER, use_ema=True, device="cpu")
            labels = torch.from_numpy(LABELS)
            conditions = None
            if meta.conditional:
                codes = torch.from_numpy(training_codes(PEN, LABELS)) if teacher.style_conditioned else None
                conditions = condition(labels, codes) if codes is not None else labels
            batch = DistillData(torch.from_numpy(IMAGES), conditions, meta.patch_size)
            preset = params.distill.student_preset
            student = None if preset is None else fresh_student(preset, teacher.unet, meta.patch_size, 0)
            rounds = distill(teacher.unet, teacher.scheduler, batch, params.distill, meta.null_label,
                             lambda steps, net: write_student(net, model_dir, student_dir(out, steps), preset),
                             progress=False, student=student)
            cfg = replace(params.sample, sampler=STUDENT_SAMPLER, guidance_scale=1.0,
                          per_class=params.distill.per_class)
            intended = np.repeat(np.arange(len(meta.class_names), dtype=np.int64), params.distill.per_class)[:1]
            for info in rounds:
                student = load_student(out, info["steps"], "cpu")
                images = generate(student, intended, len(intended), replace(cfg, steps=info["steps"]), progress=False)
                assert images.shape == (1, 16, 16)
            return out
        return self.once("distill", self.train_key(params) + _key(params.distill), work)

    def classifier(self, params: Params) -> Path:
        """commands/noisy_classifier: the noisy classifier of the images at the model's side, on its schedule, saved."""
        def work(out: Path) -> Path:
            net, _ = train_noisy_classifier(IMAGES, LABELS, params.noisy_classifier, params.diffusion,
                                            torch.device("cpu"), progress=False)
            save_classifier(net, out, params.noisy_classifier, schedule_of(params.diffusion))
            return out
        key = _key(params.noisy_classifier, params.prepare) + str(schedule_of(params.diffusion))
        return self.once("classifier", key, work)

    def pipeline(self, params: Params) -> DevagenPipeline:
        """commands/sample's pipeline: a student, or the trained model (with its guide for autoguidance, its noisy
        classifier for classifier guidance) with the sampler swapped in as load_pipeline does; each folder is loaded
        once."""
        cfg = params.sample
        if cfg.sampler == "distilled":
            folder = self.distill(params)
            return self.once("load", f"{folder}-{cfg.steps}", lambda _: load_student(folder, cfg.steps, "cpu"))
        folder, guided = self.train(params), reads_guide(cfg)
        classifier = self.classifier(params) if cfg.guidance == "classifier" else None
        loaded = self.once("load", f"{folder}-{guided}-{classifier}", lambda _: load_pipeline(
            folder, cfg.sampler, cfg.use_ema, device="cpu", with_guide=guided, classifier=classifier))
        return loaded.use_sampler(cfg.sampler)

    def sample(self, params: Params) -> None:
        """commands/sample: (the first image of) the sample set, its stats' pass count, then the one-image trajectory
        its figures show."""
        def work(out: Path) -> None:
            pipeline, meta = self.pipeline(params), read_meta(self.train(params))
            cfg = params.sample if params.sample.sampler != "distilled" else replace(params.sample, guidance_scale=1.0,
                                                                                    autoguidance_scale=1.0)
            asked = draws_classes(meta, cfg)
            labels = np.zeros(1, dtype=np.int64) if asked else None  # sample_set's first image
            images = generate(pipeline, labels, 1, cfg, progress=False)
            assert images.dtype == np.uint8 and images.shape == (1, 16, 16)
            assert pipeline.passes_per_step(cfg.guidance_scale, cfg.guidance) in (1, 2)  # sample_set's stats
            by_classifier = "classifier" if cfg.guidance == "classifier" else ""
            self.once("figure", _key(params.diffusion) + cfg.sampler + by_classifier,
                      lambda _: self.figure(pipeline, asked, cfg))
        distilled = _key(params.distill) if params.sample.sampler == "distilled" else ""
        self.once("sample", self.train_key(params) + distilled + _key(params.sample), work)

    @staticmethod
    def figure(pipeline: DevagenPipeline, asked: bool, cfg: SampleConfig) -> None:
        """The one-image trajectory the sample stage's figures show (x_t and x0 decoded at each step): once per
        prediction and sampler (and classifier guidance), as it differs from the sample set only by reading each
        step's x0."""
        trajectory = pipeline.trajectory(0 if asked else None, cfg.steps,
                                         generator=image_generators(cfg.seed, 0, 1), **guidance_options(cfg))
        assert len(trajectory.timesteps) == cfg.steps and trajectory.xt.shape == (cfg.steps + 1, 16, 16)

    def run(self, params: Params) -> None:
        """Every stage the params switch on, in dvc.yaml's order."""
        self.train(params)
        if params.distill.enabled:
            self.distill(params)
        if params.noisy_classifier.enabled:
            self.classifier(params)
        self.sample(params)


def _params(settings: dict[str, Any]) -> Params | str:
    """The Params of a combination, or its refusal: one line naming a key."""
    try:
        return params_from_dict(raw_params(settings))
    except DevagenError as exc:
        assert "\n" not in str(exc) and str(exc).startswith("params.yaml: "), str(exc)
        return str(exc)


def test_every_combination_is_accepted_or_refused_in_one_line_naming_a_key() -> None:
    """The whole matrix at load (cosine's diffusers name squaredcos_cap_v2 too); which keys refuse is pinned, so a
    refusal that appears or goes away is seen."""
    outcomes = [_params(settings) for schedule in (*SCHEDULES, "squaredcos_cap_v2") for network in NETWORKS
                for conditioning in CONDITIONING for settings in combinations(schedule, network, conditioning)]
    refused = [o for o in outcomes if isinstance(o, str)]
    assert {message.split(":")[1].strip() for message in refused} == {
        "model.style_conditioning",  # pen alone
        "model.layout_conditioning",  # layout without the pen
        "vae.enabled",  # a patch preset on latents
        "distill.enabled",  # distilling latents, or an unconditional model
        "sample.sampler",  # distilled without distill
        "sample.guidance"}  # autoguidance without a guide, classifier guidance without a classifier or on latents,
    # either with a distilled student
    assert len(outcomes) == 5 * 4 * len(CONDITIONING) * 3 * len(GUIDANCE) * 5 * 2 and 0 < len(refused) < len(outcomes)


# Executed: cosine and sigmoid in the fast tier, linear and scaled_linear in the slow one (see the module docstring).
EXECUTED = [pytest.param(s, marks=pytest.mark.slow) if s in ("linear", "scaled_linear") else s for s in SCHEDULES]


@pytest.mark.parametrize("conditioning", ("none", "class", "class and pen"))
@pytest.mark.parametrize("network", ("pixels", "patches", "latents"))
@pytest.mark.parametrize("schedule", EXECUTED)
def test_every_accepted_combination_trains_distils_and_samples(schedule: str, network: str, conditioning: str,
                                                               tmp_path: Path) -> None:
    stages = Stages(tmp_path)
    for settings in combinations(schedule, network, conditioning):
        params = _params(settings)
        if isinstance(params, str):
            continue
        try:
            stages.run(params)
        except Exception as exc:  # noqa: BLE001  the combination, named, is the finding
            raise AssertionError(f"{settings} passed params but failed at work: {type(exc).__name__}: {exc}") from exc
    distils = network != "latents" and conditioning != "none"  # the refusals pinned above
    classified = network != "latents"  # the noisy classifier reads pixels
    assert stages.counts["train"] == 3 * 2  # per prediction type: with and without the guide
    assert stages.counts["distill"] == (3 * 2 if distils else 0)
    assert stages.counts["classifier"] == int(classified)  # one schedule, one side
    # 4 samplers under CFG, autoguidance, both and classifier guidance, the student (under CFG and under both: the
    # student ignores autoguidance_scale as it does guidance_scale, but the sample sections differ)
    assert stages.counts["sample"] == 3 * (4 + 4 + 4 + 4 * classified + 2 * distils)


@pytest.mark.parametrize("network", ("pixels", "patches", "latents"))
def test_learned_variance_trains_distils_and_samples_with_every_sampler(network: str, tmp_path: Path) -> None:
    """diffusion.learned_variance on each network, class-conditioned, under CFG and autoguidance: trained, distilled
    (patches: into a fresh student of another preset, distill.student_preset) and drawn by every sampler."""
    stages = Stages(tmp_path)
    distils = network != "latents"
    for guidance, sampler in itertools.product(("cfg", "autoguidance"), SAMPLERS):
        if sampler == "distilled" and (guidance != "cfg" or not distils):
            continue
        settings = {**NETWORKS[network], **CONDITIONING["class"], **GUIDANCE[guidance], "sample.sampler": sampler,
                    "diffusion.learned_variance": True, "distill.enabled": distils,
                    "distill.student_preset": "cpu_patch_small" if network == "patches" else None}
        params = _params(settings)
        assert not isinstance(params, str), params
        stages.run(params)
        config = load_pipeline(stages.train(params), "ddpm", device="cpu").unet.config
        assert config.in_channels == (1 if network == "pixels" else 4) and config.out_channels == 2 * config.in_channels
    assert stages.counts["train"] == 2 and stages.counts["distill"] == (2 if distils else 0)
