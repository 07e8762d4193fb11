"""Where each stage reads and writes, relative to the repository root (dvc.yaml declares the same;
tests/test_dvc_yaml.py checks the two agree)."""

from pathlib import Path

RAW_DIR = Path("data/raw")
PREPARED_DIR = Path("data/prepared")
TRAIN_NPZ = PREPARED_DIR / "train.npz"
TEST_NPZ = PREPARED_DIR / "test.npz"
OCR_DIR = Path("models/ocr")
STYLE_NET_DIR = Path("models/style_net")
DIFFUSION_DIR = Path("models/diffusion")
VAE_DIR = Path("models/vae")  # latent diffusion's autoencoder (devagen.latent)
DISTILLED_DIR = Path("models/distilled")  # few-step students of the distill stage (devagen.students)
CHECKPOINT_DIR = Path("models/checkpoints")
SAMPLES_NPZ = Path("samples/samples.npz")
METRICS_DIR = Path("reports/metrics")
FIGURES_DIR = Path("reports/figures")
TRAIN_LOG = Path("reports/train/log.csv")
OCR_PER_CLASS = Path("reports/ocr/per_class.csv")
EVAL_PER_CLASS = Path("reports/eval/per_class.csv")
REPORT_HTML = Path("reports/report.html")
REPORT_MD = Path("reports/report.md")
RUN_RECORD = Path("reports/mlflow_run.json")  # the experiment's MLflow run; written by every report run
# every stage's metrics file; each tracked stage logs all that exist into the experiment's MLflow run
METRICS_FILES = {stem: METRICS_DIR / f"{stem}.json"
                 for stem in ("data", "ocr", "vae", "train", "distill", "sample", "eval")}
