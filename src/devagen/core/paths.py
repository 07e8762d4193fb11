"""Where each stage reads and writes, relative to the repository root (dvc.yaml declares the same;
tests/commands/test_dvc_yaml.py checks the two agree)."""

from pathlib import Path

RAW_DIR = Path("data/raw")
PREPARED_DIR = Path("data/prepared")
TRAIN_NPZ = PREPARED_DIR / "train.npz"
TEST_NPZ = PREPARED_DIR / "test.npz"
OCR_DIR = Path("models/ocr")
STYLE_NET_DIR = Path("models/style_net")
DIFFUSION_DIR = Path("models/diffusion")
VAE_DIR = Path("models/vae")  # latent diffusion's autoencoder (devagen.diffusion.autoencoder)
DISTILLED_DIR = Path("models/distilled")  # few-step students of the distill stage (devagen.sampling.students)
NOISY_CLASSIFIER_DIR = Path("models/noisy_classifier")  # classifier guidance's network (diffusion.noisy_classifier)
CHECKPOINT_DIR = Path("models/checkpoints")
SAMPLES_NPZ = Path("samples/samples.npz")
HUMAN_DIR = Path("reports/human")  # the human_study stage's blind sheet and its answer key (devagen.judges.human_study)
METRICS_DIR = Path("reports/metrics")  # per stage, the few scalars a person compares (`dvc exp show`)
DETAILS_DIR = Path("reports/details")  # per stage, everything it measured (the report, the model card, MLflow)
FIGURES_DIR = Path("reports/figures")
TRAIN_LOG = Path("reports/train/log.csv")
OCR_PER_CLASS = Path("reports/ocr/per_class.csv")
EVAL_PER_CLASS = Path("reports/eval/per_class.csv")
REPORT_HTML = Path("reports/report.html")
REPORT_MD = Path("reports/report.md")
RUN_RECORD = Path("reports/mlflow_run.json")  # the experiment's MLflow run; written by every report run
# the stages whose results each tracked stage logs into the experiment's MLflow run (all that exist);
# style_net writes its files too but is not tracked
TRACKED_STEMS = ("data", "ocr", "vae", "train", "distill", "noisy_classifier", "sample", "eval")
METRICS_FILES = {stem: METRICS_DIR / f"{stem}.json" for stem in TRACKED_STEMS}
DETAILS_FILES = {stem: DETAILS_DIR / f"{stem}.json" for stem in TRACKED_STEMS}  # the whole dicts MLflow logs
