"""params.yaml → typed config: casting, unknown keys, bad values named by key."""

from __future__ import annotations

from pathlib import Path

import pytest

from devagen.core.params import Params
from devagen.core.errors import DevagenError
from devagen.core.params import flatten, load_params, params_from_dict

REPO = Path(__file__).parents[2]


def test_repo_params_load() -> None:
    params = load_params(REPO / "params.yaml")
    assert isinstance(params, Params) and params.prepare.image_size == 32


def test_dvc_exp_style_strings_are_cast() -> None:
    params = params_from_dict({"train": {"lr": "5e-05", "max_steps": "10", "augment": "false"}})
    assert params.train.lr == 5e-5 and params.train.max_steps == 10 and params.train.augment is False


@pytest.mark.parametrize("raw, key", [
    ({"train": {"lrr": 1}}, "train.lrr: unknown key"),
    ({"trian": {}}, "trian: unknown section"),
    ({"train": {"lr": -1}}, "train.lr: must be > 0"),
    ({"train": {"batch_size": 0}}, "train.batch_size"),
    ({"train": {"batch_size": 2.5}}, "train.batch_size: expected an integer"),
    ({"train": {"lr": "fast"}}, "train.lr: expected float"),
    ({"model": {"preset": "huge"}}, "model.preset: unknown preset 'huge'"),
    ({"diffusion": {"beta_schedule": "quadratic"}}, "diffusion.beta_schedule"),
    ({"diffusion": {"prediction_type": "x0"}}, "diffusion.prediction_type"),
    ({"prepare": {"image_size": 34}, "model": {"preset": "cpu_small"}}, "prepare.image_size: 34 is not a multiple of 4"),
    ({"sample": {"sampler": "euler"}}, "sample.sampler"),
    ({"augment": {"rotate_p": 1.5}}, "augment.rotate_p"),
    ({"train": {"augment": "maybe"}}, "train.augment: expected true/false"),
    ({"style_net": {"epochs": 0}}, "style_net.epochs"),
    ({"style_net": {"train_images": -1}}, "style_net.train_images"),
    ({"c2st": {"lr": 0}}, "c2st.lr"),
    ({"c2st": {"batch_sise": 8}}, "c2st.batch_sise: unknown key"),
    ({"sample": {"steps": 30}, "diffusion": {"num_train_timesteps": 20}}, "sample.steps: must be at most"),
    ({"distill": {"enabled": True, "start_steps": 8}, "diffusion": {"num_train_timesteps": 100}}, "distill.start_steps"),
    ({"model": {"conditional": False}, "distill": {"enabled": True}}, "distill.enabled: the students learn"),
    ({"sample": {"guidance": "autoguidance"}}, "sample.guidance: autoguidance guides by the guide/"),
    ({"sample": {"autoguidance_scale": 2.0}}, "sample.autoguidance_scale: autoguidance guides by the guide/"),
    ({"sample": {"autoguidance_scale": 0.5}}, "sample.autoguidance_scale: must be >= 1"),
    ({"sample": {"guidance": "autoguidance", "autoguidance_scale": 2.0}, "train": {"guide_step": 5}},
     "sample.autoguidance_scale: must be >= 1.*with sample.guidance: autoguidance leave it at 1"),
    ({"sample": {"sampler": "distilled", "steps": 4, "guidance": "autoguidance"}, "distill": {"enabled": True},
      "train": {"guide_step": 5}}, "sample.guidance: the distilled students"),
    ({"sample": {"guidance": "classifier"}}, "sample.guidance: classifier guidance.*noisy_classifier.enabled: true"),
    ({"sample": {"guidance": "classifier"}, "noisy_classifier": {"enabled": True}, "vae": {"enabled": True},
      "model": {"preset": "cpu_conv"}}, "sample.guidance: the noisy classifier reads pixels"),
    ({"sample": {"sampler": "distilled", "steps": 8, "guidance": "classifier"}, "distill": {"enabled": True},
      "noisy_classifier": {"enabled": True}}, "sample.guidance: the distilled students.*no other guidance"),
    ({"sample": {"classifier_scale": -0.5}}, "sample.classifier_scale: must be >= 0"),
    ({"sample": {"guidance": "classifer"}}, "sample.guidance: choose one of cfg, autoguidance, classifier"),
    ({"noisy_classifier": {"width": 6}}, "noisy_classifier.width: must be a multiple of 4"),
    ({"noisy_classifier": {"steps": 0}}, "noisy_classifier.steps"),
    ({"noisy_classifier": {"lr": 0}}, "noisy_classifier.lr"),
    ({"noisy_classifier": {"batch_size": 0}}, "noisy_classifier.batch_size"),
])
def test_bad_values_name_the_key(raw: dict, key: str) -> None:
    with pytest.raises(DevagenError, match=key.replace("(", r"\(")):
        params_from_dict(raw)


def test_seed_preset_needs_image_size_multiple_of_32() -> None:
    params_from_dict({"model": {"preset": "seed"}, "prepare": {"image_size": 64}})
    with pytest.raises(DevagenError, match="prepare.image_size"):
        params_from_dict({"model": {"preset": "seed"}, "prepare": {"image_size": 48}})


def test_missing_and_invalid_yaml_files(tmp_path: Path) -> None:
    with pytest.raises(DevagenError, match="not found"):
        load_params(tmp_path / "params.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed")
    with pytest.raises(DevagenError, match="not valid YAML"):
        load_params(bad)


def test_flatten_has_every_section_key() -> None:
    flat = flatten(Params())
    assert flat["train.lr"] == Params().train.lr and "sample.guidance_scale" in flat


def test_unquoted_off_in_yaml_reads_as_the_string_off(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """YAML 1.1 turns `compile: off` into False; a string field takes it back as "off"."""
    from devagen.core.params import params_from_dict

    assert params_from_dict({"train": {"compile": False}}).train.compile == "off"
    assert params_from_dict({"train": {"compile": "default"}}).train.compile == "default"


@pytest.mark.parametrize("conditional", (True, False))
def test_classifier_guidance_loads_with_its_classifier_for_either_model(conditional: bool) -> None:
    """Classifier guidance works for unconditional models too (the classifier gives the class; no CFG there)."""
    params = params_from_dict({"sample": {"guidance": "classifier", "classifier_scale": "2.5"},
                               "noisy_classifier": {"enabled": True},
                               "model": {"conditional": conditional, "style_conditioning": conditional}})
    assert params.sample.classifier_scale == 2.5 and params.noisy_classifier.enabled
    assert not Params().noisy_classifier.enabled and Params().sample.guidance == "cfg"  # off by default
