"""DVC stage `train_ocr`: runs `devagen train-ocr` (see `devagen train-ocr --help`)."""

from devagen.cli import run_stage

if __name__ == "__main__":
    run_stage("train_ocr")
