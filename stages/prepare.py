"""DVC stage `prepare`: runs `devagen prepare` (see `devagen prepare --help`)."""

from devagen.cli import run_stage

if __name__ == "__main__":
    run_stage("prepare")
