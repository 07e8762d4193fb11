"""DVC stage `evaluate`: runs `devagen evaluate` (see `devagen evaluate --help`)."""

from devagen.cli import run_stage

if __name__ == "__main__":
    run_stage("evaluate")
