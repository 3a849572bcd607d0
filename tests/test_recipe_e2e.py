"""End to end on CPU: ``python -m recipe.guardreasoner_vl.main_grpo`` runs GRPO with the dynamic clip.

Two trainer runs in all (each about a minute and ~7 GB of RAM on a 2-core host, longer when the
host is busy), on the tiny model, the CPU backend's overrides, and RL parquet written by the
project's own writer with text-only and image rows of varying lengths:

1. 3 steps, validation before and after, a checkpoint after every step. The logged
   ``actor/clip_eps`` (measured on the worker, returned in the loss metrics) must equal the
   schedule at every step, and every validation data source must get its F1 keys.
2. Resume from the step-2 checkpoint with a longer run (4 steps, so 2 epochs of the 12 rows): the
   first step trained is step 3 and its clip is the schedule's value at step 3 (not at step 1).

The schedule's S is fixed (``guardreasoner.clip_schedule.total_steps=4``) so both runs share one
schedule; the product values are 0.15, 0.075, 0.01875, then the default floor 0.01 at the last step
(the formula's 0 would halve the on-policy gradient).

The training rows are in a fixed order (``data.shuffle=False``): the first step's 4 prompts are
text-only and the later ones mix text and image rows, and each step makes 2 actor updates of 2
prompts. So the actor sees text-only and mixed micro-batches (the case the plugin's
``verl_fixes`` repairs in verl's Qwen2-VL forward).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

REPO_ROOT = Path(__file__).resolve().parents[1]
SCHEDULE_TOTAL = 4
TRAIN_ROWS = 12
BATCH = 4
WORDS = "please tell me how to bake bread with a sharp knife in the small kitchen tonight my friend".split()


def _records(source: str, n: int, *, image_every: int, with_response: bool, first_image: int = 0) -> list:
    """Rows of varying text length (3..13 words) and image sizes; labels alternate; images on every
    ``image_every``-th row from row ``first_image`` on."""
    from PIL import Image

    from data_prep.record import GuardRecord

    rows = []
    for i in range(n):
        request = " ".join(WORDS[(i + j) % len(WORDS)] for j in range(3 + (i * 5) % 11))
        images = ()
        if image_every and i >= first_image and i % image_every == 0:
            images = (Image.new("RGB", (40 + 8 * i, 32 + 4 * i), ((37 * i) % 255, 120, 60)),)
        response, response_label = None, "none"
        if with_response:
            response = " ".join(WORDS[(2 * i + j) % len(WORDS)] for j in range(2 + i % 4))
            response_label = "harmful" if i % 3 == 0 else "unharmful"
        rows.append(
            GuardRecord(
                id=f"{source}-{i:03d}",
                source=source,
                request=request,
                request_label="harmful" if i % 2 else "unharmful",
                response=response,
                response_label=response_label,
                images=images,
            )
        )
    return rows


@pytest.fixture(scope="module")
def rl_data(tmp_path_factory) -> tuple[Path, Path]:
    from data_prep.writers import ImageOptions, write_rl

    folder = tmp_path_factory.mktemp("rl_data")
    # 16 visual tokens at most per image: the tiny model's prompts stay short.
    options = ImageOptions(max_pixels=16 * 28 * 28, min_pixels=4 * 28 * 28)
    train, val = folder / "train.parquet", folder / "val.parquet"
    # Rows 0-3 (step 1) text-only, then an image on every other row.
    write_rl(
        _records("hard_pool", TRAIN_ROWS, image_every=2, with_response=True, first_image=BATCH),
        train,
        split="train",
        options=options,
    )
    # Two benchmarks: a prompt-only text one and a text-image one with responses.
    val_rows = _records("ToxicChat", 3, image_every=0, with_response=False) + _records(
        "SPA-VL-Eval", 3, image_every=1, with_response=True
    )
    write_rl(val_rows, val, split="val", options=options)
    return train, val


def _run_grpo(workdir: Path, model: Path, data: tuple[Path, Path], extra: list[str]) -> list[dict]:
    """Run the recipe's entry point in a subprocess; return the file logger's records."""
    from recipe.guardreasoner_vl.cpu_backend.overrides import CPU_ENV, CPU_OVERRIDES

    workdir.mkdir(parents=True, exist_ok=True)
    metrics = workdir / "metrics.jsonl"
    train, val = data
    overrides = [
        *CPU_OVERRIDES,
        f"data.train_files={train}",
        f"data.val_files={val}",
        f"actor_rollout_ref.model.path={model}",
        f"data.train_batch_size={BATCH}",
        "data.shuffle=False",
        "data.max_prompt_length=1024",
        "data.max_response_length=24",
        "data.dataloader_num_workers=0",
        "data.filter_overlong_prompts=False",
        "actor_rollout_ref.rollout.n=2",
        f"actor_rollout_ref.actor.ppo_mini_batch_size={BATCH // 2}",
        "actor_rollout_ref.actor.ppo_max_token_len_per_gpu=16384",
        "actor_rollout_ref.rollout.log_prob_max_token_len_per_gpu=16384",
        f"guardreasoner.clip_schedule.total_steps={SCHEDULE_TOTAL}",
        f"trainer.default_local_dir={workdir.parent / 'checkpoints'}",
        "trainer.logger=[console,file]",
        "reward.num_workers=1",
        # The file logger runs in the task-runner actor: give it the path through Ray's runtime env.
        f"++ray_kwargs.ray_init.runtime_env.env_vars.VERL_FILE_LOGGER_PATH={metrics}",
        *extra,
    ]
    env = {
        **os.environ,
        **CPU_ENV,
        "VERL_FILE_LOGGER_PATH": str(metrics),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "recipe.guardreasoner_vl.main_grpo", *overrides],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
    )
    (workdir / "run.log").write_text(proc.stdout + "\n===== stderr\n" + proc.stderr)
    if proc.returncode != 0:
        pytest.fail(f"main_grpo exited {proc.returncode}; log {workdir / 'run.log'}:\n{proc.stderr[-4000:]}")
    return [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]


def _train_steps(records: list[dict]) -> dict[int, dict]:
    return {r["step"]: r["data"] for r in records if "actor/pg_loss" in r["data"]}


def _schedule(step: int) -> float:
    from recipe.guardreasoner_vl.clip_schedule import get_clip_schedule

    return get_clip_schedule("product")(step, SCHEDULE_TOTAL, eps0=0.2)


@pytest.fixture(scope="module")
def first_run(tmp_path_factory, tiny_model_dir, rl_data) -> tuple[Path, list[dict]]:
    root = tmp_path_factory.mktemp("grpo")
    records = _run_grpo(
        root / "run1",
        tiny_model_dir,
        rl_data,
        ["trainer.total_training_steps=3", "trainer.test_freq=3", "trainer.save_freq=1", "trainer.val_before_train=True"],
    )
    return root, records


def test_logged_clip_eps_is_the_schedule_at_every_step(first_run):
    _, records = first_run
    steps = _train_steps(records)
    assert sorted(steps) == [1, 2, 3]
    for step, metrics in steps.items():
        assert metrics["actor/clip_eps"] == pytest.approx(_schedule(step), abs=1e-12), step
    assert [steps[s]["actor/clip_eps"] for s in (1, 2, 3)] == pytest.approx([0.15, 0.075, 0.01875])


def test_validation_logs_f1_per_data_source_before_and_after_training(first_run):
    _, records = first_run
    validations = {r["step"]: r["data"] for r in records if any(k.startswith("val-core/") for k in r["data"])}
    assert sorted(validations) == [0, 3]  # before training and after the last step
    for metrics in validations.values():
        for source in ("ToxicChat", "SPA-VL-Eval"):
            assert 0.0 <= metrics[f"val-core/{source}/request_f1"] <= 1.0
        # ToxicChat rows carry no response: no response task there.
        assert 0.0 <= metrics["val-core/SPA-VL-Eval/response_f1"] <= 1.0
        assert "val-core/ToxicChat/response_f1" not in metrics


def test_resume_continues_the_schedule_at_the_restored_step(first_run, tiny_model_dir, rl_data):
    root, _ = first_run
    step2 = root / "checkpoints" / "global_step_2"
    assert (step2 / "actor").is_dir()
    records = _run_grpo(
        root / "run2",
        tiny_model_dir,
        rl_data,
        [
            # 3 steps make one epoch of the 12 training rows: a second epoch gives steps 4 (and more).
            "trainer.total_epochs=2",
            "trainer.total_training_steps=4",
            "trainer.resume_mode=resume_path",
            f"trainer.resume_from_path={step2}",
            "trainer.val_before_train=False",
            "trainer.test_freq=-1",
            "trainer.save_freq=-1",
        ],
    )
    steps = _train_steps(records)
    assert sorted(steps) == [3, 4]
    assert steps[3]["actor/clip_eps"] == pytest.approx(_schedule(3), abs=1e-12)
    assert steps[4]["actor/clip_eps"] == 0.01  # the default floor: the last step is a real PPO step
