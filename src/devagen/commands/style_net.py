"""`devagen style-net` (DVC stage style_net): the style-space network and its test accuracy."""

from __future__ import annotations

import click

from ..core import paths
from .common import load, write_metrics
from .failure import StageCommand
from .options import PARAMS_OPTION


@click.command("style-net", cls=StageCommand)
@PARAMS_OPTION
def style_net(params_path: str) -> None:
    """Train the style-space network (no augmentation: it sees pen width); into models/style_net/."""
    from ..data import prepared as data
    from ..judges import style_space

    params = load(params_path)
    train, test = data.load_split(paths.TRAIN_NPZ), data.load_split(paths.TEST_NPZ)
    space, result = style_space.train_style_space(params.style_net, train.images, train.labels,
                                                  test.images, test.labels)
    style_space.save_style_space(space, paths.STYLE_NET_DIR, params.style_net, train.images.shape[-1])
    write_metrics("style_net", {k: v for k, v in result.items() if k != "per_class_accuracy"})
    click.echo(f"style-net: test accuracy {result['test_accuracy']:.4f} in {result['train_seconds']:.0f} s "
               f"on {result['train_images']} images")
