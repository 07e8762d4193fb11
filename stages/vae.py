"""DVC stage `vae`: runs `devagen vae` (see `devagen vae --help`)."""

from devagen.cli import run_stage

if __name__ == "__main__":
    run_stage("vae")
