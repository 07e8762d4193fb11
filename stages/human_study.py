"""DVC stage `human_study`: runs `devagen human-study` (see `devagen human-study --help`)."""

from devagen.cli import run_stage

if __name__ == "__main__":
    run_stage("human_study")
