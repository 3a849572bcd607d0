"""``examples/pipeline.sh`` for real, on the CPU: all seven steps on the tiny model and the bundled sample.

data (build-sft, check-sft-lengths) -> sft (run_sft.sh under torchrun, export-hf) -> mine (hf backend)
-> split -> concat (+ build-rl) -> grpo (run_grpo.sh through the recipe's entry point, export-hf) ->
eval (build-eval + evaluate on the mini benchmarks). Two training steps per stage: the run proves that
the steps hand over to each other (file names, formats, models), which the dry run cannot.

This is also the project's end-to-end test of R-SFT through the launch script (verl's SFT trainer
under torchrun, a checkpoint, the exported model) and of a GRPO run driven by ``run_grpo.sh``; the
dynamic clip's delivery and resume are checked in detail by ``test_recipe_e2e.py``.
"""

from __future__ import annotations

import json
import math
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REPO_ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
GRPO_STEPS = 2
STEPS = ["data", "sft", "mine", "split", "concat", "grpo", "eval"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, tiny_model_dir, sample_dir):
    """Run the whole pipeline once; return (run folder, combined log, metrics records of GRPO)."""
    run_dir = tmp_path_factory.mktemp("pipeline") / "run"
    metrics = run_dir / "grpo_metrics.jsonl"
    grpo_args = [
        # 4 prompts x 2 samples per step, short responses, few visual tokens: a CPU-sized run.
        "data.train_batch_size=4",
        "data.max_prompt_length=1536",
        "data.max_response_length=24",
        "data.dataloader_num_workers=0",
        "actor_rollout_ref.rollout.n=2",
        "actor_rollout_ref.actor.ppo_mini_batch_size=4",
        "actor_rollout_ref.actor.ppo_max_token_len_per_gpu=16384",
        "actor_rollout_ref.rollout.log_prob_max_token_len_per_gpu=16384",
        "reward.num_workers=1",
        f"trainer.total_training_steps={GRPO_STEPS}",
        f"trainer.test_freq={GRPO_STEPS}",
        f"trainer.save_freq={GRPO_STEPS}",
        "trainer.val_before_train=False",
        "trainer.logger=[console,file]",
        f"++ray_kwargs.ray_init.runtime_env.env_vars.VERL_FILE_LOGGER_PATH={metrics}",
    ]
    env = {
        **os.environ,
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHON": sys.executable,
        "VLTRAIN": str(Path(sample_dir) / "vltrain"),
        "BENCHMARKS": str(Path(sample_dir) / "benchmarks"),
        "BASE_MODEL": str(tiny_model_dir),
        "RUN_DIR": str(run_dir),
        "DEVICE": "cpu",
        "GPUS_PER_NODE": "1",
        "MASTER_PORT": str(_free_port()),
        "WANDB_MODE": "disabled",
        "OMP_NUM_THREADS": "1",
        # R-SFT: batches of 4 rows, two steps.
        "TRAIN_BATCH_SIZE": "4",
        # One row per micro-batch: text-only micro-batches occur (the verl fix's text-only path) next to image ones.
        "SFT_ARGS": "trainer.total_training_steps=2 data.use_dynamic_bsz=False data.micro_batch_size_per_gpu=1",
        "MINE_BACKEND": "hf",
        "MINE_K": "2",
        "MINE_ARGS": "--max-new-tokens 8 --device cpu --max-pixels 12544",
        "RL_POOL_SIZE": "0",  # the whole mined pool
        "GRPO_ARGS": " ".join(grpo_args),
        "VERL_FILE_LOGGER_PATH": str(metrics),
        "EVAL_BACKEND": "hf",
        "EVAL_ARGS": "--allow-size-mismatch --max-new-tokens 8 --device cpu --n-resamples 20 --no-charts --no-progress",
    }
    proc = subprocess.run(
        ["bash", "examples/pipeline.sh"], cwd=REPO_ROOT, env=env, capture_output=True, text=True
    )
    log = proc.stdout + "\n===== stderr\n" + proc.stderr
    (run_dir / "pipeline.log").write_text(log)
    assert proc.returncode == 0, f"pipeline.sh exited {proc.returncode}; log {run_dir / 'pipeline.log'}:\n{log[-6000:]}"
    records = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    return run_dir, log, records


def test_every_step_ran_and_handed_over_its_outputs(pipeline):
    run_dir, log, _ = pipeline
    started = re.findall(r"^== (\w+)$", log, flags=re.MULTILINE)
    assert started == STEPS
    for output in (
        "data/sft_train.parquet", "data/sft_train.lengths.json", "models/r-sft/config.json",
        "mine/report.json", "mine/pool.jsonl", "split/train.jsonl", "split/val.jsonl",
        "rl/train.parquet", "rl/val.parquet", "models/grpo-standard/config.json",
        "eval/grpo-standard/results.json",
    ):  # fmt: skip
        assert (run_dir / output).is_file(), output
    assert "\npipeline.sh: done (data,sft,mine,split,concat,grpo,eval)\n" in log


def test_sft_step_trained_through_torchrun_and_exported_a_loadable_model(pipeline, tiny_model_dir):
    """run_sft.sh -> torchrun (1 process, gloo) -> the recipe's SFT trainer -> checkpoint -> export-hf."""
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from recipe.guardreasoner_vl import export_hf

    run_dir, log, _ = pipeline
    losses = {int(m[1]): float(m[2]) for m in re.finditer(r"step:(\d+) - .*?train/loss:([0-9.eE+-]+)", log)}
    assert sorted(losses) == [1, 2] and all(math.isfinite(v) and v > 0 for v in losses.values())
    ckpt = run_dir / "checkpoints" / "r-sft"
    assert (ckpt / export_hf.TRACKER_FILE).read_text().strip() == "2"
    model_dir = run_dir / "models" / "r-sft"
    assert json.loads((model_dir / export_hf.SOURCE_FILE).read_text())["checkpoint"].endswith("global_step_2")
    assert not model_dir.with_name("r-sft.incomplete").exists()

    processor = AutoProcessor.from_pretrained(model_dir)
    assert processor.image_processor is not None and processor.tokenizer is not None
    exported = AutoModelForImageTextToText.from_pretrained(model_dir).state_dict()
    initial = AutoModelForImageTextToText.from_pretrained(tiny_model_dir).state_dict()
    # The rank-0 shard of a 1-process run is the whole trained model, in the transformers module names.
    shard = torch.load(ckpt / "global_step_2" / "model_world_size_1_rank_0.pt", map_location="cpu", weights_only=False)
    trained = {k: (v.full_tensor() if hasattr(v, "full_tensor") else v).float() for k, v in shard.items()}
    assert set(trained) == set(exported) == set(initial)
    for key, value in trained.items():  # the export holds the trained weights, up to bf16 rounding
        torch.testing.assert_close(exported[key].float(), value, atol=1e-2, rtol=1e-2, msg=key)
    changed = {k for k in trained if not torch.equal(trained[k], initial[k].float())}
    # The released R-SFT: the language model moved, the vision tower and projector stayed frozen.
    visual = {k for k in trained if ".visual." in k or k.startswith("visual.")}
    assert visual and any(".merger." in k for k in visual)
    assert not changed & visual, sorted(changed & visual)[:5]
    assert any("language_model" in k or "lm_head" in k for k in changed), sorted(changed)[:5]
    assert "R-SFT:" in log and "parameters frozen" in log


def test_mining_judged_every_corpus_row_with_the_sft_model(pipeline, sample_dir):
    run_dir, _, _ = pipeline
    report = json.loads((run_dir / "mine" / "report.json").read_text())
    corpus_rows = sum(len(json.loads(p.read_text())) for p in (Path(sample_dir) / "vltrain").glob("*.json"))
    assert report["rows"] == corpus_rows and report["k"] == 2
    pool = (run_dir / "mine" / "pool.jsonl").read_text().splitlines()
    assert len(pool) == report["kept"] > 0


def test_rl_data_holds_the_split_and_the_concatenations(pipeline):
    import pyarrow.parquet as pq

    run_dir, _, _ = pipeline
    train_rows = len((run_dir / "split" / "train.jsonl").read_text().splitlines())
    infos = pq.read_table(run_dir / "rl" / "train.parquet").column("extra_info").to_pylist()
    n_concat = sum(bool(info["concat_of"]) for info in infos)
    assert len(infos) == train_rows + n_concat and n_concat == round(train_rows * 0.2 / 0.8)


def test_grpo_step_logged_the_scheduled_clip_and_validation_f1(pipeline):
    from recipe.guardreasoner_vl.check_config import compose
    from recipe.guardreasoner_vl.recipe_config import load_guardreasoner_config

    _, _, records = pipeline
    steps = {r["step"]: r["data"] for r in records if "actor/pg_loss" in r["data"]}
    assert sorted(steps) == list(range(1, GRPO_STEPS + 1))
    config = compose("guardreasoner_vl_grpo", ["data.train_files=t", "data.val_files=v", "actor_rollout_ref.model.path=m"])
    schedule = load_guardreasoner_config(config).clip_schedule
    for step, metrics in steps.items():
        assert metrics["actor/clip_eps"] == pytest.approx(schedule.value(step, GRPO_STEPS), abs=1e-12), step
    validation = next(r["data"] for r in records if any(k.startswith("val-core/") for k in r["data"]))
    assert any(k.endswith("/request_f1") for k in validation)


def test_eval_step_scored_every_benchmark_of_the_table(pipeline):
    from data_prep.benchmarks import BENCHMARKS

    run_dir, _, _ = pipeline
    results = json.loads((run_dir / "eval" / "grpo-standard" / "results.json").read_text())
    assert {(b["task"], b["benchmark"]) for b in results["benchmarks"]} == {(s.task, s.name) for s in BENCHMARKS}
    assert all(b["n"] == 4 for b in results["benchmarks"])
