"""DVC stage `style_net`: runs `devagen style-net` (see `devagen style-net --help`)."""

from devagen.cli import run_stage

if __name__ == "__main__":
    run_stage("style_net")
