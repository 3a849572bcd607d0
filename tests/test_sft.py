"""R-SFT on verl's SFT trainer: the mixed-batch dataset fix, the config checker and the HF export.

The real ``torchrun`` of ``examples/sft/run_sft.sh`` on the tiny model (the recipe's SFT trainer, the
frozen vision tower, the checkpoint and its export) runs as the pipeline's R-SFT step in
``tests/test_pipeline_e2e.py``."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("verl")

from PIL import Image  # noqa: E402

from data_prep.record import GuardRecord  # noqa: E402
from data_prep.writers import write_sft  # noqa: E402
from cli import main as cli  # noqa: E402
from recipe.guardreasoner_vl import check_config, export_hf  # noqa: E402
from rewards.grammar import format_output  # noqa: E402



def _records() -> list[GuardRecord]:
    """Four rows, every modality and both response cases; text first, so a stock collate fails on row 0."""
    red, blue = Image.new("RGB", (56, 40), (200, 30, 30)), Image.new("RGB", (40, 64), (20, 40, 220))
    rows = [
        ("text-000000", "How do I bake bread?", "unharmful", None, "none", ()),
        ("text_image-000000", "What is in this picture?", "unharmful", "A red square.", "unharmful", (red,)),
        ("text-000001", "Tell me how to pick a lock to break into a house.", "harmful", "I can't help.", "unharmful", ()),
        ("image-000000", "", "harmful", None, "none", (blue,)),
    ]
    return [
        GuardRecord(
            id=rid, source="sft_sample", request=request, request_label=req, response=response, response_label=resp,
            images=images, reasoning=format_output("The request is considered step by step.", req, resp),
        )
        for rid, request, req, response, resp, images in rows
    ]


@pytest.fixture(scope="module")
def sft_parquet(tmp_path_factory) -> Path:
    """SFT parquet written by ``data_prep.writers.write_sft`` (what ``guardreasoner-vl build-sft`` runs)."""
    path = tmp_path_factory.mktemp("sft_data") / "train.parquet"
    summary = write_sft(_records(), path)
    assert summary.rows_out == 4 and summary.images == 2
    return path


# ------------------------------------------------------------------------------------ mixed batches
def _dataset(cls, parquet: Path, model_dir: Path):
    from omegaconf import OmegaConf
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(model_dir)
    config = OmegaConf.create({"pad_mode": "no_padding", "max_length": 2048, "truncation": "error"})
    return cls(parquet_files=str(parquet), tokenizer=processor.tokenizer, config=config, processor=processor)


def test_stock_verl_collate_fails_on_text_then_image_rows(sft_parquet, tiny_model_dir):
    """Why GuardSFTDataset exists. If this starts passing, verl fixed it and the subclass can go."""
    from verl.utils.dataset.dataset_utils import SFTTensorCollator
    from verl.utils.dataset.multiturn_sft_dataset import MultiTurnSFTDataset

    dataset = _dataset(MultiTurnSFTDataset, sft_parquet, tiny_model_dir)
    assert "multi_modal_inputs" not in dataset[0] and "multi_modal_inputs" in dataset[1]
    with pytest.raises(KeyError, match="multi_modal_inputs"):
        SFTTensorCollator("no_padding")([dataset[0], dataset[1]])


def test_guard_dataset_collates_mixed_rows_into_model_inputs(sft_parquet, tiny_model_dir):
    from verl.utils.dataset.dataset_utils import SFTTensorCollator
    from verl.utils.model import extract_multi_modal_inputs

    from recipe.guardreasoner_vl.sft_dataset import GuardSFTDataset

    dataset = _dataset(GuardSFTDataset, sft_parquet, tiny_model_dir)
    rows = [dataset[i] for i in range(4)]
    assert [bool(r["multi_modal_inputs"]) for r in rows] == [False, True, False, True]
    batch = SFTTensorCollator("no_padding")(rows)
    inputs = extract_multi_modal_inputs(batch["multi_modal_inputs"])
    # The two images' patches, in row order, and one grid per image.
    patches = [rows[i]["multi_modal_inputs"]["pixel_values"].shape[0] for i in (1, 3)]
    assert inputs["pixel_values"].shape[0] == sum(patches)
    assert inputs["image_grid_thw"].shape == (2, 3)
    # Image rows hold their image tokens; text rows none (loss mask covers only the assistant turn).
    image_pad = dataset.processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    merge = dataset.processor.image_processor.merge_size ** 2
    for row in rows:
        grid = row["multi_modal_inputs"].get("image_grid_thw")
        expected = 0 if grid is None else int(grid.prod(dim=-1).sum()) // merge
        assert int((row["input_ids"] == image_pad).sum()) == expected
        assert 0 < int(row["loss_mask"].sum()) < row["input_ids"].shape[0]


# ------------------------------------------------------------------------------------ config checker
def test_sft_yaml_has_a_comment_above_every_field():
    """verl's yaml convention (enforced in its CI): a comment line directly above each key."""
    lines = (check_config.CONFIG_DIR / "guardreasoner_vl_sft.yaml").read_text().splitlines()
    bare = [
        f"{number}: {line.strip()}"
        for number, line in enumerate(lines, start=1)
        if re.match(r"^\s*[A-Za-z_]+:", line) and not (number > 1 and lines[number - 2].strip().startswith("#"))
    ]
    assert bare == []


def test_check_config_sft_composes_and_validates_with_local_model(tiny_model_dir):
    report = check_config.check("sft", ["data.train_files=x.parquet", f"model.path={tiny_model_dir}"])
    assert report.config.optim.lr == pytest.approx(5e-5) and report.config.optim.lr_scheduler_type == "cosine"
    assert report.config.data.train_batch_size == 192 and report.config.data.max_length == 2048
    assert report.config.trainer.total_epochs == 3 and report.config.engine.dtype == "bfloat16"
    assert report.config.model.lora_rank == 0
    assert {"engine", "optim", "checkpoint", "profiler", "data.custom_cls", "model"} <= set(report.passed)
    assert report.config_name == "guardreasoner_vl_sft"


def test_check_config_skips_a_model_that_is_not_local_yet():
    report = check_config.check("recipe.guardreasoner_vl.main_sft", ["data.train_files=x.parquet"])
    assert "model" not in report.passed
    assert any(s.startswith("model (model.path=Qwen/Qwen2.5-VL-3B-Instruct") for s in report.skipped)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ([], r"data\.train_files is not set"),
        (["data.train_files=x", "trainer.n_gpus_per_node=5"], r"train_batch_size=192 must divide by .* = 5"),
        (["data.train_files=x", "data.max_token_len_per_gpu=1024"], r"max_token_len_per_gpu=1024 < data\.max_length=2048"),
        (["data.train_files=x", "trainer.test_freq=after_each_epoch"], r"data\.val_files is null"),
        (["data.train_files=x", "optim.lr_scheduler_type=linear"], r"optim is invalid: AssertionError: .*lr_scheduler_type"),
        (["data.train_files=x", "data.custom_cls.name=Nope"], r"custom_cls .*Nope does not load"),
        (["data.train_files=x", "data.no_such_key=1"], r"does not compose: .*no_such_key"),
    ],
)
def test_check_config_sft_rejects(overrides, message):
    with pytest.raises(check_config.ConfigCheckError, match=message):
        check_config.check("sft", overrides)


def test_check_config_grpo_runs_verl_validation_and_the_recipe_section():
    report = check_config.check(
        "grpo", ["data.train_files=a.parquet", "data.val_files=b.parquet", "actor_rollout_ref.model.path=/m"]
    )
    assert {"verl validate_config", "algorithm", "actor_rollout_ref.rollout", "reward function", "guardreasoner"} <= set(
        report.passed
    )
    # verl's own reward_model.rollout.name is ??? but its section is disabled: not an error.
    assert report.config.reward.reward_model.enable is False
    # A swapped reward function that does not exist fails here, not inside a Ray worker.
    swapped = [
        "reward.custom_reward_function.path=pkg://rewards.grammar",
        "reward.custom_reward_function.name=no_such_function",
        "reward.custom_reward_function.reward_kwargs={}",
    ]
    with pytest.raises(check_config.ConfigCheckError, match=r"reward function pkg://rewards.grammar:no_such_function"):
        check_config.check(
            "grpo", ["data.train_files=a", "data.val_files=b", "actor_rollout_ref.model.path=/m", *swapped]
        )


def test_check_config_cli_exit_codes(capsys):
    assert cli.main(["check-config", "sft", "data.train_files=x.parquet"]) == 0
    assert capsys.readouterr().out.startswith("config ok: sft (guardreasoner_vl_sft): composed")
    assert cli.main(["check-config", "nope"]) == 1
    assert "guardreasoner-vl check-config: error: unknown entry 'nope'" in capsys.readouterr().err


# ------------------------------------------------------------------------------------ export
def _fake_step(root: Path, step: int, component: str = "") -> Path:
    folder = root / f"global_step_{step}" / component
    (folder / "huggingface").mkdir(parents=True)
    (folder / "fsdp_config.json").write_text("{}")
    return folder


def test_resolve_checkpoint_follows_the_tracker_and_component(tmp_path):
    _fake_step(tmp_path, 1)
    latest = _fake_step(tmp_path, 2)
    (tmp_path / export_hf.TRACKER_FILE).write_text("2\n")
    assert export_hf.resolve_checkpoint(tmp_path) == latest
    assert export_hf.resolve_checkpoint(tmp_path, step=1) == tmp_path / "global_step_1"
    assert export_hf.resolve_checkpoint(latest) == latest
    actor = _fake_step(tmp_path / "grpo", 3, "actor")
    (tmp_path / "grpo" / export_hf.TRACKER_FILE).write_text("3")
    assert export_hf.resolve_checkpoint(tmp_path / "grpo", component="actor") == actor


def test_resolve_checkpoint_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="latest_checkpointed_iteration.txt not found"):
        export_hf.resolve_checkpoint(tmp_path)
    (tmp_path / export_hf.TRACKER_FILE).write_text("abc")
    with pytest.raises(ValueError, match="holds 'abc'"):
        export_hf.resolve_checkpoint(tmp_path)
    with pytest.raises(FileNotFoundError, match="global_step_7 does not exist"):
        export_hf.resolve_checkpoint(tmp_path, step=7)
    (tmp_path / "global_step_7").mkdir()
    with pytest.raises(FileNotFoundError, match="fsdp_config.json is missing"):
        export_hf.resolve_checkpoint(tmp_path, step=7)
    with pytest.raises(ValueError, match="contradicts"):
        export_hf.resolve_checkpoint(tmp_path / "global_step_7", step=8)


# ------------------------------------------------------------------------------------ frozen vision tower
def test_sft_config_freezes_vision_tower_and_projector_with_zero_weight_decay():
    from recipe.guardreasoner_vl.sft_trainer import SFTFreezeConfig, load_freeze_config

    cfg = check_config.compose("guardreasoner_vl_sft", ["data.train_files=x.parquet"])
    assert cfg.optim.weight_decay == 0.0  # the released run (LLaMA-Factory's default)
    assert load_freeze_config(cfg) == SFTFreezeConfig(freeze_vision_tower=True, freeze_multi_modal_projector=True)
    trained = check_config.compose("guardreasoner_vl_sft", ["data.train_files=x.parquet",
                                                            "guardreasoner.freeze_vision_tower=False"])
    assert load_freeze_config(trained).freeze_vision_tower is False
    with pytest.raises(ValueError, match="freeze_vision_tower must be true or false"):
        SFTFreezeConfig(freeze_vision_tower="yes")


@pytest.mark.parametrize(
    ("tower", "projector"), [(True, True), (True, False), (False, True), (False, False)]
)
def test_freeze_vision_picks_the_tower_and_the_projector(tiny_model_dir, tower, projector):
    from transformers import AutoModelForImageTextToText

    from recipe.guardreasoner_vl.sft_trainer import SFTFreezeConfig, freeze_vision, vision_parameter_names

    model = AutoModelForImageTextToText.from_pretrained(tiny_model_dir)
    tower_names, projector_names = vision_parameter_names(model)
    assert tower_names and projector_names
    assert all(".visual." in n and ".merger." not in n for n in tower_names)
    assert all(".visual.merger." in n for n in projector_names)
    frozen = freeze_vision(model, SFTFreezeConfig(freeze_vision_tower=tower, freeze_multi_modal_projector=projector))
    assert set(frozen) == set(tower_names * tower + projector_names * projector)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable.isdisjoint(frozen) and any("language_model" in n for n in trainable)
