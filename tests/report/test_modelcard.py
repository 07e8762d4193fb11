"""The model card: Hub-readable metadata, the load code for the model's kind, numbers from the metrics files."""

from __future__ import annotations

from pathlib import Path

from huggingface_hub import ModelCard
from PIL import Image

from devagen.core.params import Params
from devagen.core.params import flatten
from devagen.report.modelcard import write_model_card

METRICS = {"train": {"steps": 2800, "final_loss": 0.0269, "img_per_s": 79.7, "params": 2740961, "device": "cpu"},
           "sample": {"sampler": "dpmpp", "steps": 10, "guidance_scale": 3.0},
           "eval": {"conditional": True, "n_generated": 920, "ocr_accuracy": 0.9207, "fid": 1.7727,
                    "floor_fid": 0.7535, "precision": 0.579, "recall": 0.796, "legible_share": 0.77},
           "ocr": {"test_accuracy": 0.9949}}


def _card(tmp_path: Path, params: dict, metrics: dict, folder: str = "model") -> tuple[ModelCard, str]:
    Image.new("L", (8, 8)).save(tmp_path / "grid.png")
    (tmp_path / folder).mkdir()
    path = write_model_card(tmp_path / folder, params, metrics, tmp_path / "grid.png", "exp-1")
    return ModelCard.load(path), path.read_text(encoding="utf-8")


def test_conditional_card_has_metadata_results_and_the_one_line_load(tmp_path: Path) -> None:
    params = {**flatten(Params()), "sample.guidance_scale": 3.0, "sample.steps": 10, "train.max_steps": 2800}
    card, text = _card(tmp_path, params, METRICS)
    data = card.data.to_dict()
    assert data["license"] == "cc-by-4.0" and data["library_name"] == "diffusers"
    assert {"diffusers", "devanagari", "class-conditional"} <= set(data["tags"])
    [result] = card.data.eval_results and [r for r in card.data.eval_results if r.metric_name.startswith("OCR")]
    assert result.metric_value == 0.9207 and result.dataset_name.startswith("DHCD")
    assert 'DiffusionPipeline.from_pretrained("models/diffusion", trust_remote_code=True).use_sampler("dpmpp")' in text
    assert "guidance_scale=3.0, num_inference_steps=10" in text
    assert "| train.max_steps | 2,800 |" in text and "| OCR accuracy | 92.1 % |" in text and "1.77" in text
    assert "![samples](samples.png)" in text and (tmp_path / "model" / "samples.png").is_file()
    assert "CC BY 4.0" in text


def test_unconditional_card_shows_the_documents_code_and_when_it_fits(tmp_path: Path) -> None:
    params = {**flatten(Params()), "model.conditional": False}
    _, text = _card(tmp_path, params, {"train": METRICS["train"]})
    assert 'pipeline = DDPMPipeline.from_pretrained("models/diffusion")' in text
    assert "DPMSolverMultistepScheduler.from_config(pipeline.scheduler.config)" in text  # cosine/v-pred default
    assert "Not evaluated yet" in text and "model-index" not in text
    seed = {**params, "diffusion.beta_schedule": "linear", "diffusion.prediction_type": "epsilon"}
    _, text = _card(tmp_path, seed, {}, folder="seed")
    assert "from_config" not in text


def test_style_conditioned_card_says_how_to_ask_for_a_pen(tmp_path: Path) -> None:
    plain = _card(tmp_path, flatten(Params()), METRICS, "plain")[1]
    styled = _card(tmp_path, {**flatten(Params()), "model.style_conditioning": True}, METRICS, "styled")[1]
    assert "stroke=1.3" not in plain
    assert "pipeline(labels=[0, 1], stroke=1.3, slant=10.0)" in styled and "--stroke 1.3 --slant 10" in styled
    laid_out = _card(tmp_path, {**flatten(Params()), "model.style_conditioning": True,
                                "model.layout_conditioning": True}, METRICS, "layout")[1]
    assert "Layout-conditioned" not in styled and "Layout-conditioned: four more codes" in laid_out


def test_card_says_how_to_sample_with_the_guide_when_the_stage_did(tmp_path: Path) -> None:
    plain = _card(tmp_path, flatten(Params()), METRICS, "plain")[1]
    guided = _card(tmp_path, {**flatten(Params()), "sample.autoguidance_scale": 2.0, "train.guide_step": 9}, METRICS,
                   "guided")[1]
    assert "with_guide=True" not in plain
    assert "with_guide=True" in guided and "autoguidance_scale=2)" in guided


def test_self_conditioned_card_says_plain_ddpm_pipeline_cannot_sample_it(tmp_path: Path) -> None:
    plain = _card(tmp_path, flatten(Params()), METRICS, "plain")[1]
    conditional = _card(tmp_path, {**flatten(Params()), "model.self_conditioning": True}, METRICS, "cond")[1]
    alone = _card(tmp_path, {**flatten(Params()), "model.self_conditioning": True, "model.conditional": False},
                  METRICS, "uncond")[1]
    assert "Self-conditioned" not in plain and "Self-conditioned: the UNet also reads" in conditional
    assert "DDPMPipeline.from_pretrained" not in alone and "DevagenPipeline" in alone


def test_the_card_says_the_shape_training_built(tmp_path: Path) -> None:
    unet = {"block_out_channels": [64, 128, 192], "attention_levels": [2], "layers_per_block": 1, "mid_block": "none",
            "norm_num_groups": 32, "dropout": 0.0, "attention_head_dim": 8, "sample_size": 16, "in_channels": 4,
            "patch_size": 2}
    params = {**flatten(Params()), "model.block_out_channels": [64, 128, 192]}
    _, text = _card(tmp_path, params, {**METRICS, "train": {**METRICS["train"], "unet": unet}})
    assert ("built with levels of 64/128/192 channels (attention at levels: 2; mid block: none), 1 ResNet layer(s) "
            "per block, 32 norm groups, dropout 0, seeing 2×2 pixel patches as channels, trained on") in text
    assert "| model.block_out_channels | [64, 128, 192] |" in text
    older = _card(tmp_path, flatten(Params()), METRICS, "older")[1]  # train details from before the shape was kept
    assert "parameters) trained on the DHCD train split" in older


def test_card_says_whether_the_output_is_tone_mapped(tmp_path: Path) -> None:
    said = {on: _card(tmp_path, flatten(Params()), {**METRICS, "sample": {**METRICS["sample"], "tone_map": on}},
                      f"tone_{on}")[1] for on in (True, False)}
    assert "The output is tone-mapped: `tone.json` in this folder" in said[True] and "on 460 images" in said[True]
    assert "`pipeline(..., tone_map=False)`" in said[True]
    assert "The output is not tone-mapped" in said[False] and "at or below 8 set to black" in said[False]
