"""DVC stage `report`: runs `devagen report` (see `devagen report --help`)."""

from devagen.cli import run_stage

if __name__ == "__main__":
    run_stage("report")
