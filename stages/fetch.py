"""DVC stage `fetch`: runs `devagen fetch` (see `devagen fetch --help`)."""

from devagen.cli import run_stage

if __name__ == "__main__":
    run_stage("fetch")
