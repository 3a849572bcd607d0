"""``guardreasoner-vl demo`` (the README's first command): its data and its training config, checked
without a trainer run (the trainer itself runs end to end in tests/test_recipe_e2e.py)."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

pytest.importorskip("verl")


def test_dry_run_prepares_model_and_data_and_prints_the_command(tmp_path, tiny_model_dir, capsys):
    from cli import main as cli

    out = tmp_path / "demo"
    assert cli.main(["demo", "-o", str(out), "--model", str(tiny_model_dir), "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert "recipe.guardreasoner_vl.main_grpo" in printed and "VERL_PLATFORM=cpu" in printed
    train = pq.read_table(out / "data" / "train.parquet").to_pylist()
    val = pq.read_table(out / "data" / "val.parquet").to_pylist()
    concatenated = [r for r in train if r["extra_info"]["concat_of"]]
    # 72 bundled rows plus 20 % concatenations: 18 of the 90 rows.
    assert len(train) == 90 and len(concatenated) == 18
    # Validation rows are named as the evaluation tables name them (SPA_VL_Eval.json -> SPA-VL-Eval).
    assert {r["data_source"] for r in val} == {"ToxicChat", "HarmImageTest", "SPA-VL-Eval", "BeaverTails"}
    assert {r["extra_info"]["modality"] for r in train} == {"text", "image", "text_image"}


def test_unknown_mini_benchmark_is_a_one_line_error(tmp_path, tiny_model_dir, capsys):
    from cli import main as cli

    code = cli.main(["demo", "-o", str(tmp_path), "--model", str(tiny_model_dir), "--dry-run",
                     "--val-benchmarks", "NoSuchBench"])
    assert code == 1
    assert "no bundled mini benchmark 'NoSuchBench'" in capsys.readouterr().err


def test_demo_training_config_composes_and_passes_verl_validation(tmp_path, tiny_model_dir):
    from recipe.guardreasoner_vl import check_config
    from demo.run import training_overrides

    overrides = training_overrides(tiny_model_dir, tmp_path / "t.parquet", tmp_path / "v.parquet", tmp_path, 3)
    report = check_config.check("grpo", overrides)
    config = report.config
    assert config.actor_rollout_ref.rollout.name == "hf" and config.trainer.total_training_steps == 3
    assert config.actor_rollout_ref.actor.policy_loss.loss_mode == "guardreasoner_dynamic_clip"
    assert config.reward.custom_reward_function.path == "pkg://rewards.guardreasoner_vl"
