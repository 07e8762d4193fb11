"""DVC stage `sample`: runs `devagen sample` (see `devagen sample --help`)."""

from devagen.cli import run_stage

if __name__ == "__main__":
    run_stage("sample")
