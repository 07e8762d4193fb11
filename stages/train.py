"""DVC stage `train`: runs `devagen train` (see `devagen train --help`)."""

from devagen.cli import run_stage

if __name__ == "__main__":
    run_stage("train")
