"""`devagen vae` (DVC stage vae): latent diffusion's autoencoder, trained on DHCD and measured on the test split."""

from __future__ import annotations

import click

from ..core import paths
from ..core.integrity import replace_dir
from .common import finish, load, write_metrics
from .failure import StageCommand
from .options import PARAMS_OPTION

FIGURE = "vae.png"
SHOWN = 24  # random test images in the figure, each above its reconstruction


@click.command(cls=StageCommand)
@PARAMS_OPTION
def vae(params_path: str) -> None:
    """Train the AutoencoderKL that latent diffusion works in (vae.enabled) and measure its reconstructions."""
    from ..core.off_notes import write_no_autoencoder
    from ..report import figures, plots
    from .optional import begin

    params = load(params_path)
    cfg, out = params.vae, paths.VAE_DIR
    started = begin(params, "vae", cfg.enabled, "vae.enabled", out, write_no_autoencoder, FIGURE, "Latent diffusion")
    if started is None:
        return
    tmp, tracker = started
    import numpy as np

    from ..core.device import pick_device
    from ..data import prepared as data
    from ..diffusion.autoencoder import (
        psnr,
        reconstruct,
        save_autoencoder,
        train_autoencoder,
    )
    from ..judges import metrics, ocr
    from ..pen import measures as style

    train, test = data.load_split(paths.TRAIN_NPZ), data.load_split(paths.TEST_NPZ)
    judge = ocr.load_judge(paths.OCR_DIR)
    size = params.prepare.image_size  # the autoencoder works at the diffusion model's side; the judge at DHCD's
    autoencoder, stats = train_autoencoder(data.resize(train.images, size), cfg, pick_device())
    save_autoencoder(autoencoder, tmp)
    recon = data.resize(reconstruct(autoencoder, data.resize(test.images, size)), test.images.shape[-1])
    _, probs_real = ocr.predict_features(judge, test.images, params.evaluate.batch_size)
    _, probs_recon = ocr.predict_features(judge, recon, params.evaluate.batch_size)
    real_m, recon_m = style.measure(test.images), style.measure(recon)
    ratio = {m: float(np.nanmedian(recon_m[m]) / np.nanmedian(real_m[m])) for m in ("stroke_width", "ink_mass")}
    result = {"enabled": True, **stats, "test_images": int(len(test.images)), "psnr_db": psnr(recon, test.images),
              "l1": float(np.mean(np.abs(recon.astype(np.float64) - test.images))) / 255.0,
              "ocr_accuracy_reconstructed": metrics.ocr_accuracy(probs_recon, test.labels)["accuracy"],
              "ocr_accuracy_real": metrics.ocr_accuracy(probs_real, test.labels)["accuracy"],
              "stroke_width_ratio": ratio["stroke_width"], "ink_mass_ratio": ratio["ink_mass"]}
    replace_dir(tmp, out)
    write_metrics("vae", result)
    pick = np.random.default_rng(cfg.seed).choice(len(test.images), SHOWN, replace=False)
    grid = figures.labelled_rows([("real", test.images[pick]), ("recon", recon[pick])], scale=4)
    title = "Random test images (top) and their autoencoder reconstructions (bottom), 4x"
    figures.save_image(plots.stack_vertical([plots.text_banner(title, grid.width), grid], gap=0),
                       paths.FIGURES_DIR / FIGURE)
    finish(tracker, figures=(FIGURE,))
    click.echo(f"vae: PSNR {result['psnr_db']:.1f} dB, judge reads {result['ocr_accuracy_reconstructed']:.1%} of "
               f"reconstructions ({result['ocr_accuracy_real']:.1%} of originals), stroke width "
               f"{result['stroke_width_ratio']:.2f}x, latents {stats['latent_shape']}")

