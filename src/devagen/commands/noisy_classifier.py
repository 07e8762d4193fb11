"""`devagen noisy-classifier` (DVC stage noisy_classifier): classifier guidance's network, trained on noised DHCD
train images and measured on noised test images at several timesteps. Never the OCR judge."""

from __future__ import annotations

import click

from ..core import paths
from ..core.integrity import replace_dir
from .common import finish, load, write_metrics
from .failure import StageCommand
from .options import PARAMS_OPTION

FIGURE = "noisy_classifier.png"
TEST_IMAGES = 2000  # seeded subset of the test split the accuracies are measured on
FRACTIONS = (0.0, 0.25, 0.5, 0.75, 1.0)  # of the training timesteps, where the accuracy is measured


@click.command(cls=StageCommand)
@PARAMS_OPTION
def noisy_classifier(params_path: str) -> None:
    """Train the noisy classifier that sample.guidance: classifier differentiates (noisy_classifier.enabled)."""
    from ..core.off_notes import write_no_classifier
    from .optional import begin

    params = load(params_path)
    cfg, out = params.noisy_classifier, paths.NOISY_CLASSIFIER_DIR
    started = begin(params, "noisy_classifier", cfg.enabled, "noisy_classifier.enabled", out, write_no_classifier,
                    FIGURE, "Classifier guidance")
    if started is None:
        return
    tmp, tracker = started
    import numpy as np

    from ..core.device import pick_device
    from ..data import prepared as data
    from ..diffusion.noisy_classifier import save_classifier, schedule_of
    from ..diffusion.unet import build_noise_scheduler
    from ..report import figures, plots
    from ..training.noisy_classifier import accuracy_by_timestep, train_noisy_classifier

    size = params.prepare.image_size  # the side the diffusion model draws at
    train, test = data.load_split(paths.TRAIN_NPZ), data.load_split(paths.TEST_NPZ)
    classifier, stats = train_noisy_classifier(data.resize(train.images, size), train.labels, cfg, params.diffusion,
                                               pick_device())
    save_classifier(classifier, tmp, cfg, schedule_of(params.diffusion))
    total = params.diffusion.num_train_timesteps
    timesteps = [min(int(f * total), total - 1) for f in FRACTIONS]  # 0, 250, 500, 750, 999
    pick = np.sort(np.random.default_rng(cfg.seed).choice(len(test.images), min(TEST_IMAGES, len(test.images)),
                                                          replace=False))
    accuracy = accuracy_by_timestep(classifier, build_noise_scheduler(params.diffusion),
                                    data.resize(test.images[pick], size), test.labels[pick], timesteps, cfg.seed)
    replace_dir(tmp, out)
    result = {"enabled": True, **stats, "test_images": int(len(pick)),
              **{f"test_accuracy_t{t}": a for t, a in zip(timesteps, accuracy)}}
    write_metrics("noisy_classifier", result)
    chance = 1.0 / classifier.num_classes
    figures.save_image(plots.line_plot(timesteps, {"noisy classifier": accuracy, "chance": [chance] * len(timesteps)},
                                       f"Test accuracy on images noised to timestep t ({len(pick)} images)",
                                       "timestep t", "accuracy"), paths.FIGURES_DIR / FIGURE)
    finish(tracker, figures=(FIGURE,))
    middle = len(timesteps) // 2
    click.echo(f"noisy_classifier: {stats['steps']} steps in {stats['seconds']:.0f} s, loss {stats['final_loss']:.3f}; "
               f"test accuracy {accuracy[0]:.1%} at t=0, {accuracy[middle]:.1%} at t={timesteps[middle]}")
