"""DVC stage `distill`: runs `devagen distill` (see `devagen distill --help`)."""

from devagen.cli import run_stage

if __name__ == "__main__":
    run_stage("distill")
