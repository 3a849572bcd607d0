"""The GRPO recipe's configs, its typed section, the launch scripts and the trainer wiring (no GPU, no Ray)."""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import math
import os
import re
import shlex
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

pytest.importorskip("verl")
torch = pytest.importorskip("torch")

from hydra import compose, initialize_config_dir  # noqa: E402
from omegaconf import OmegaConf, open_dict  # noqa: E402

from verl.trainer.ppo.utils import need_critic, need_reference_policy  # noqa: E402
from verl.utils.config import omega_conf_to_dataclass, validate_config  # noqa: E402

import recipe.guardreasoner_vl as recipe_pkg  # noqa: E402
from recipe.guardreasoner_vl.recipe_config import (  # noqa: E402
    ClipScheduleConfig,
    GuardReasonerConfig,
    load_guardreasoner_config,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = Path(recipe_pkg.__file__).parent / "config"
GRPO_CONFIGS = ("guardreasoner_vl_grpo", "guardreasoner_vl_eco_grpo")
REQUIRED = ["data.train_files=train.parquet", "data.val_files=val.parquet", "actor_rollout_ref.model.path=/models/r-sft"]
SCRIPTS = sorted((REPO_ROOT / "examples" / "grpo").glob("*.sh"))


@pytest.fixture(scope="module", autouse=True)
def _hydra():
    """One Hydra initialisation for the module (composition is the slow part of these tests)."""
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        yield


def _compose(config_name: str, overrides: list[str]):
    return compose(config_name=config_name, overrides=overrides)


def _edited(cfg, **updates):
    """A copy of ``cfg`` with dotted keys set (added if new), without composing again."""
    cfg = copy.deepcopy(cfg)
    for key, value in updates.items():
        OmegaConf.update(cfg, key.replace("__", "."), value, force_add=True)
    return cfg


def _validate(cfg) -> None:
    """What ``main_grpo.run`` checks before Ray starts: verl's validate_config and the recipe section."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "Disabled critic as adv_estimator != gae"
        validate_config(config=cfg, use_reference_policy=need_reference_policy(cfg), use_critic=need_critic(cfg))
    load_guardreasoner_config(cfg)


@pytest.fixture(scope="module")
def grpo_cfg():
    return _compose("guardreasoner_vl_grpo", REQUIRED)


def test_grpo_config_holds_the_paper_hyper_parameters(grpo_cfg):
    cfg = grpo_cfg
    actor, rollout = cfg.actor_rollout_ref.actor, cfg.actor_rollout_ref.rollout
    assert cfg.algorithm.adv_estimator == "grpo"
    assert (rollout.n, rollout.temperature, rollout.name) == (16, 1.2, "vllm")
    assert (cfg.data.train_batch_size, actor.ppo_mini_batch_size) == (512, 256)
    assert (actor.optim.lr, actor.optim.weight_decay) == (1e-6, 0.01)
    assert actor.use_kl_loss is False and cfg.algorithm.use_kl_in_reward is False
    assert not need_reference_policy(cfg)  # no KL at all: no reference model is built
    assert (cfg.data.max_prompt_length, cfg.data.max_response_length) == (3072, 3072)
    assert (rollout.prompt_length, rollout.response_length) == (3072, 3072)
    assert cfg.trainer.total_epochs == 1 and actor.freeze_vision_tower is False
    assert actor.policy_loss.loss_mode == "guardreasoner_dynamic_clip"
    assert (cfg.guardreasoner.clip_schedule.name, cfg.guardreasoner.clip_schedule.eps0) == ("product", 0.2)
    assert cfg.guardreasoner.clip_schedule.floor == 0.01  # the last step stays a real PPO step


def test_dual_clip_is_off_in_the_preset(grpo_cfg):
    """verl's dual clip (clip_ratio_c) is not in the paper's objective: a bound the clamped ratio never reaches."""
    from verl.trainer.ppo.core_algos import compute_policy_loss_vanilla

    from recipe.guardreasoner_vl.policy_loss import compute_policy_loss_dynamic_clip, with_clip_eps

    actor = omega_conf_to_dataclass(grpo_cfg.actor_rollout_ref.actor)
    assert actor.clip_ratio_c > math.exp(20)  # verl clamps the log-ratio to [-20, 20]
    # negative advantages on tokens whose probability rose a lot: where verl's default dual clip (3.0) binds
    old = torch.zeros(1, 4)
    new = torch.tensor([[0.5, 2.0, 5.0, 30.0]], requires_grad=True)
    adv, mask = torch.full((1, 4), -1.0), torch.ones(1, 4)
    eps = 0.2
    loss, metrics = compute_policy_loss_dynamic_clip(old, new, adv, mask, "token-mean", with_clip_eps(actor, eps))
    ratio = torch.exp(torch.clamp(new - old, -20, 20))
    expected = torch.maximum(-adv * ratio, -adv * torch.clamp(ratio, 1 - eps, 1 + eps)).mean()
    torch.testing.assert_close(loss, expected)
    assert metrics["actor/pg_clipfrac_lower"] == 0.0
    stock = dataclasses.replace(actor, clip_ratio_c=3.0)  # verl's default
    dual, dual_metrics = compute_policy_loss_vanilla(old, new, adv, mask, "token-mean", with_clip_eps(stock, eps))
    assert dual < loss and dual_metrics["actor/pg_clipfrac_lower"] > 0  # the loss of those tokens capped at 3 |A|


def test_reward_goes_through_custom_reward_function(grpo_cfg):
    fn = OmegaConf.to_container(grpo_cfg.reward.custom_reward_function, resolve=True)
    assert fn["path"] == "pkg://rewards.guardreasoner_vl" and fn["name"] == "compute_score"
    assert fn["reward_kwargs"] == {"beta": 1.0, "length_norm": 3072.0, "length_unit": "chars", "eps": 1 / 48,
                                   "require_think": None, "variant": "paper", "length_aware": True}
    assert "reward" not in grpo_cfg.guardreasoner  # one home for the reward options: reward_kwargs
    assert "custom_reward_function" not in grpo_cfg or grpo_cfg.get("custom_reward_function", {}).get("path") is None


def test_reward_function_loads_from_the_config_and_scores(grpo_cfg):
    from verl.trainer.ppo.reward import get_custom_reward_fn

    fn = get_custom_reward_fn(grpo_cfg)
    out = fn(
        data_source="x",
        solution_str="<think>\nok\n</think>\n<result>\nRequest: harmful\nResponse: None\n</result>",
        ground_truth="Request: harmful\nResponse: None",
        extra_info=None,
    )
    assert out["score"] == 0.0 and out["request_tp"] == 1.0


@pytest.mark.parametrize("config_name", GRPO_CONFIGS)
def test_configs_compose_and_pass_verl_validation(config_name):
    cfg = _compose(config_name, REQUIRED)
    _validate(cfg)
    beta = cfg.reward.custom_reward_function.reward_kwargs.beta
    assert beta == (1.0 if config_name == "guardreasoner_vl_grpo" else pytest.approx(1 / 6))


def test_required_paths_must_be_given(grpo_cfg):
    cfg = _edited(grpo_cfg, data__train_files=None)
    with pytest.raises(ValueError, match=r"set data.train_files \(e.g. data.train_files=...\)"):
        load_guardreasoner_config(cfg)


@pytest.mark.parametrize("path", sorted(CONFIG_DIR.glob("guardreasoner_vl_*grpo*.yaml")), ids=lambda p: p.name)
def test_yaml_has_a_comment_above_every_field_and_blank_lines_between(path):
    """verl's yaml convention (its CI checks the same on its own configs)."""
    lines = path.read_text().splitlines()
    problems = []
    for i, line in enumerate(lines):
        if not re.match(r"^\s*[\w.@]+:", line):
            continue
        prev = lines[i - 1].strip() if i else ""
        if not prev.startswith("#"):
            problems.append(f"line {i + 1}: no comment above {line.strip()!r}")
        if "#" in line.split(":", 1)[1]:
            problems.append(f"line {i + 1}: inline comment")
        # a field follows a blank line, its comment block, or its parent
        j = i - 1
        while j >= 0 and lines[j].strip().startswith("#"):
            j -= 1
        if j >= 0 and lines[j].strip() and not lines[j].rstrip().endswith(":"):
            problems.append(f"line {i + 1}: no blank line before the field {line.strip()!r}")
    assert not problems, "\n".join(problems)


# ------------------------------------------------------------------ the typed section


def test_section_dataclasses_build_from_the_yaml(grpo_cfg):
    section = omega_conf_to_dataclass(grpo_cfg.guardreasoner)
    assert isinstance(section, GuardReasonerConfig)
    assert isinstance(section.clip_schedule, ClipScheduleConfig)
    assert section.clip_schedule.value(1, 4) == pytest.approx(0.15)
    assert section.clip_schedule.value(3, 4) == pytest.approx(0.01875)
    assert section.clip_schedule.value(4, 4) == 0.01
    with pytest.raises(Exception, match="frozen"):
        section.clip_schedule.eps0 = 0.3


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("clip_schedule.name", "exponential", "guardreasoner.clip_schedule: unknown clip schedule 'exponential'"),
        ("clip_schedule.eps0", 1.5, r"guardreasoner.clip_schedule: eps0 must be a number in \(0, 1\)"),
        ("clip_schedule.floor", 0.5, r"guardreasoner.clip_schedule: floor must be a number in \[0, eps0"),
        ("clip_schedule.total_steps", 0, "total_steps must be an integer >= 1"),
        ("clip_schedule.eps_0", 0.1, "eps_0"),
    ],
)
def test_bad_section_values_fail_before_start_up(grpo_cfg, key, value, match):
    cfg = _edited(grpo_cfg, **{f"guardreasoner.{key}": value})
    with pytest.raises(Exception, match=match):
        load_guardreasoner_config(cfg)


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("variant", "nope", "reward_kwargs: variant must be one of paper, released"),
        ("beta", -1.0, "reward_kwargs: beta must be a positive finite number"),
        ("betta", 0.5, "reward_kwargs: compute_score got unexpected keyword.s. betta"),
        ("length_unit", "tokens", "needs reward.reward_manager.name=guardreasoner_token_length"),
    ],
)
def test_bad_reward_options_fail_before_start_up(grpo_cfg, key, value, match):
    cfg = _edited(grpo_cfg, **{f"reward.custom_reward_function.reward_kwargs.{key}": value})
    with pytest.raises(ValueError, match=match):
        load_guardreasoner_config(cfg)


def test_token_lengths_with_their_reward_manager_pass(grpo_cfg):
    cfg = _edited(grpo_cfg, **{"reward.custom_reward_function.reward_kwargs.length_unit": "tokens",
                               "reward.reward_manager.name": "guardreasoner_token_length"})
    load_guardreasoner_config(cfg)


def test_another_reward_function_keeps_its_own_options(grpo_cfg):
    cfg = _edited(grpo_cfg, **{"reward.custom_reward_function.path": "pkg://my_pkg.reward",
                               "reward.custom_reward_function.reward_kwargs": {"anything": 1}})
    load_guardreasoner_config(cfg)


def test_config_without_the_section_is_rejected(grpo_cfg):
    cfg = copy.deepcopy(grpo_cfg)
    with open_dict(cfg):
        del cfg["guardreasoner"]
    with pytest.raises(ValueError, match="no 'guardreasoner' section"):
        load_guardreasoner_config(cfg)


def test_entry_point_checks_the_config_before_starting_ray(grpo_cfg):
    from recipe.guardreasoner_vl.main_grpo import run

    cfg = _edited(grpo_cfg, **{"trainer.use_v1": False})
    with pytest.raises(ValueError, match="set trainer.use_v1=True"):
        run(cfg)
    import ray

    assert not ray.is_initialized()


# ------------------------------------------------------------------ launch scripts


def test_launch_scripts_exist_and_parse():
    assert {p.name for p in SCRIPTS} >= {"run_grpo.sh", "submit_ray_job.sh"}
    for script in SCRIPTS:
        subprocess.run(["bash", "-n", str(script)], check=True)
        text = script.read_text()
        assert "set -euo pipefail" in text, script.name


def _printed_overrides(script: str, env: dict[str, str], *args: str, cwd: Path = REPO_ROOT) -> list[str]:
    """The lines a launch script prints with PRINT_OVERRIDES=1 (run from ``cwd``)."""
    return subprocess.run(
        ["bash", str(REPO_ROOT / "examples" / script), *args],
        env={**os.environ, "PYTHON": sys.executable, "PRINT_OVERRIDES": "1", **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()


def _script_overrides(env: dict[str, str], *args: str, cwd: Path = REPO_ROOT) -> tuple[str, list[str]]:
    """run_grpo.sh's config name and overrides."""
    out = _printed_overrides("grpo/run_grpo.sh", env, *args, cwd=cwd)
    return out[0], out[1:]


@pytest.mark.parametrize(
    ("env", "config_name", "experiment"),
    [
        ({"MODEL_SIZE": "3b"}, "guardreasoner_vl_grpo", "grpo-standard-3b"),
        ({"MODEL_SIZE": "7b"}, "guardreasoner_vl_grpo", "grpo-standard-7b"),
        ({"MODEL_SIZE": "3b", "VARIANT": "eco"}, "guardreasoner_vl_eco_grpo", "grpo-eco-3b"),
        ({"MODEL_SIZE": "7b", "VARIANT": "eco"}, "guardreasoner_vl_eco_grpo", "grpo-eco-7b"),
        ({"MODEL_SIZE": "7b", "NNODES": "2", "GPUS_PER_NODE": "8"}, "guardreasoner_vl_grpo", "grpo-standard-7b"),
        # DEVICE=cpu asks the CPU backend for its overrides: verl in a fresh interpreter.
        pytest.param({"DEVICE": "cpu"}, "guardreasoner_vl_grpo", "grpo-standard-3b", marks=pytest.mark.e2e),
    ],
    ids=["3b", "7b", "eco-3b", "eco-7b", "multi-node-7b", "cpu"],
)
def test_script_overrides_compose_and_validate(env, config_name, experiment):
    name, overrides = _script_overrides(env, "trainer.save_freq=10")
    assert name == config_name
    assert len(overrides) == len(set(o.split("=", 1)[0] for o in overrides))  # one override per key
    cfg = _compose(name, overrides)
    _validate(cfg)
    assert cfg.trainer.experiment_name == experiment and cfg.trainer.save_freq == 10
    assert cfg.trainer.nnodes == int(env.get("NNODES", 1))
    assert cfg.trainer.n_gpus_per_node == (1 if env.get("DEVICE") == "cpu" else int(env.get("GPUS_PER_NODE", 4)))


ABLATIONS = ("no-concat", "no-dynamic-clip", "no-length-reward", "rsft-only")


@pytest.mark.parametrize("ablation", ABLATIONS)
@pytest.mark.parametrize("variant", ["standard", "eco"])
def test_ablation_presets_compose_validate_and_change_only_their_part(ablation, variant):
    """Each row of the paper's Table 4 is one ABLATION= preset of run_grpo.sh, on top of the full recipe."""
    from verl.trainer.ppo.reward import get_custom_reward_fn

    env = {"MODEL_SIZE": "7b", "VARIANT": variant}
    base_name, base_overrides = _script_overrides(env)
    name, overrides = _script_overrides({**env, "ABLATION": ablation})
    assert name == base_name and len(overrides) == len({o.split("=", 1)[0] for o in overrides})
    cfg, full = _compose(name, overrides), _compose(base_name, base_overrides)
    _validate(cfg)
    assert cfg.trainer.experiment_name == f"grpo-{variant}-7b-{ablation}"  # checkpoints never mix with the full run
    section, full_section = load_guardreasoner_config(cfg), load_guardreasoner_config(full)

    # what the preset changes ...
    changed = {
        "data.train_files": cfg.data.train_files != full.data.train_files,
        "clip": [section.clip_schedule.value(s, 18) for s in range(1, 19)]
        != [full_section.clip_schedule.value(s, 18) for s in range(1, 19)],
        "reward": cfg.reward.custom_reward_function.reward_kwargs != full.reward.custom_reward_function.reward_kwargs,
        "val_only": bool(cfg.trainer.get("val_only")),
    }
    expected = {"no-concat": "data.train_files", "no-dynamic-clip": "clip", "no-length-reward": "reward",
                "rsft-only": "val_only"}[ablation]
    assert [key for key, differs in changed.items() if differs] == [expected]
    # ... and what it means
    if ablation == "no-concat":
        assert cfg.data.train_files.endswith("rl/train_noconcat.parquet")
    elif ablation == "no-dynamic-clip":
        assert {section.clip_schedule.value(s, 18) for s in range(1, 19)} == {0.2}  # stock GRPO clip
    elif ablation == "no-length-reward":
        score = get_custom_reward_fn(cfg)
        gold = "Request: harmful\nResponse: None"
        half = "<think>\n" + "x" * 5000 + "\n</think>\n<result>\nRequest: harmful\nResponse: harmful\n</result>"
        assert score(data_source="s", solution_str=half, ground_truth=gold, extra_info=None)["score"] == 0.5
        assert score(data_source="s", solution_str=half[-60:], ground_truth=gold, extra_info=None)["score"] == 0.0
    else:
        assert cfg.trainer.val_before_train is True  # the validation of the R-SFT model is all that runs


@pytest.mark.e2e  # runs the launch script's config check: verl in a fresh interpreter
def test_ablation_preset_passes_the_launch_config_check():
    proc = subprocess.run(
        ["bash", str(REPO_ROOT / "examples" / "grpo" / "run_grpo.sh")],
        env={**os.environ, "PYTHON": sys.executable, "CHECK_CONFIG": "1", "ABLATION": "no-length-reward",
             "MODEL_PATH": "/models/r-sft", "TRAIN_FILES": "t.parquet", "VAL_FILES": "v.parquet"},
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "config ok" in proc.stdout


def test_unknown_ablation_is_refused():
    proc = subprocess.run(
        ["bash", str(REPO_ROOT / "examples" / "grpo" / "run_grpo.sh")],
        env={**os.environ, "ABLATION": "no-rl", "PRINT_OVERRIDES": "1"}, capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 2 and "ABLATION must be none, no-concat" in proc.stderr


def test_script_passes_only_what_differs_from_the_yaml():
    _, overrides = _script_overrides({})
    keys = {o.split("=", 1)[0] for o in overrides}
    yaml_held = {"actor_rollout_ref.rollout.n", "actor_rollout_ref.actor.optim.lr", "data.train_batch_size"}
    assert not keys & yaml_held


def test_script_rejects_bad_settings():
    proc = subprocess.run(
        ["bash", str(REPO_ROOT / "examples" / "grpo" / "run_grpo.sh")],
        env={**os.environ, "MODEL_SIZE": "13b", "PRINT_OVERRIDES": "1"},
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "MODEL_SIZE must be 3b or 7b" in proc.stderr


def test_ray_job_submission_runs_the_launch_script_on_the_cluster():
    out = subprocess.run(
        ["bash", str(REPO_ROOT / "examples" / "grpo" / "submit_ray_job.sh"), "trainer.save_freq=10"],
        env={**os.environ, "DRY_RUN": "1", "RAY_ADDRESS": "http://head:8265", "MODEL_SIZE": "7b", "VARIANT": "eco"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    argv = shlex.split(out)
    assert argv[:5] == ["ray", "job", "submit", "--address", "http://head:8265"]
    entry = argv[argv.index("--") + 1 :]
    assert entry[0] == "env" and {"NNODES=2", "GPUS_PER_NODE=8", "MODEL_SIZE=7b", "VARIANT=eco"} <= set(entry)
    assert "examples/grpo/run_grpo.sh" in " ".join(entry) and entry[-1] == "trainer.save_freq=10"


def _sft_overrides(env: dict[str, str], cwd: Path, *args: str) -> list[str]:
    return _printed_overrides("sft/run_sft.sh", env, *args, cwd=cwd)


def _as_dict(overrides: list[str]) -> dict[str, str]:
    return dict(o.split("=", 1) for o in overrides)


def test_launch_scripts_make_every_local_path_absolute_before_ray(tmp_path):
    """A relative path would be resolved by each Ray worker / torchrun rank on its own node."""
    (tmp_path / "Qwen").mkdir()  # an org/name-shaped folder that exists locally is a path, not a hub id
    env = {"MODEL_PATH": "Qwen/local-model", "TRAIN_FILES": "[rl/a.parquet, /abs/b.parquet,hdfs://nn/c.parquet]",
           "VAL_FILES": "../val.parquet", "CKPT_DIR": "ckpt/grpo"}
    (tmp_path / "Qwen" / "local-model").mkdir()
    got = _as_dict(_script_overrides(env, cwd=tmp_path)[1])
    assert got["actor_rollout_ref.model.path"] == f"{tmp_path}/Qwen/local-model"
    assert got["data.train_files"] == f"[{tmp_path}/rl/a.parquet,/abs/b.parquet,hdfs://nn/c.parquet]"
    assert got["data.val_files"] == f"{tmp_path.parent}/val.parquet"
    assert got["trainer.default_local_dir"] == f"{tmp_path}/ckpt/grpo"
    # the defaults too, and SFT's hub id stays a hub id
    sft = _as_dict(_sft_overrides({}, tmp_path))
    assert sft["model.path"] == "Qwen/Qwen2.5-VL-3B-Instruct"
    assert sft["data.train_files"] == f"{tmp_path}/data/sft/train.parquet"
    assert sft["trainer.default_local_dir"] == f"{tmp_path}/checkpoints/guardreasoner-vl/r-sft-3b"


def test_multi_node_script_config_passes_the_relative_path_check():
    _, overrides = _script_overrides({"NNODES": "2", "GPUS_PER_NODE": "8", "MODEL_SIZE": "7b"})
    from recipe.guardreasoner_vl.check_config import validate

    report = validate(_compose("guardreasoner_vl_grpo", overrides), "grpo", this_machine=False)
    assert {"batch layout", "rollout layout"} <= set(report.passed)


def test_checkpoint_retention_default_and_keep_all():
    _, overrides = _script_overrides({})
    assert {"trainer.max_actor_ckpt_to_keep=2", "trainer.max_critic_ckpt_to_keep=2"} <= set(overrides)
    _, overrides = _script_overrides({"MAX_CKPT_TO_KEEP": "0"})
    cfg = _compose("guardreasoner_vl_grpo", overrides)
    assert cfg.trainer.max_actor_ckpt_to_keep is None  # verl: null = keep all
    assert _as_dict(_sft_overrides({}, REPO_ROOT))["trainer.max_ckpt_to_keep"] == "2"


@pytest.mark.parametrize(
    ("env", "offload"),
    [
        ({"MODEL_SIZE": "7b", "GPUS_PER_NODE": "4"}, "True"),
        ({"MODEL_SIZE": "7b", "GPUS_PER_NODE": "8"}, "False"),
        ({"MODEL_SIZE": "7b", "GPUS_PER_NODE": "4", "NNODES": "2"}, "False"),
        ({"MODEL_SIZE": "3b", "GPUS_PER_NODE": "4"}, "False"),
        ({"MODEL_SIZE": "3b", "GPUS_PER_NODE": "2"}, "True"),
        ({"MODEL_SIZE": "7b", "GPUS_PER_NODE": "4", "ACTOR_OFFLOAD": "False"}, "False"),
    ],
    ids=["7b-4gpu", "7b-8gpu", "7b-2x4gpu", "3b-4gpu", "3b-2gpu", "7b-4gpu-forced-off"],
)
def test_grpo_memory_default_turns_on_offload_where_80gb_would_not_fit(env, offload):
    _, overrides = _script_overrides(env)
    got = _as_dict(overrides)
    assert got["actor_rollout_ref.actor.fsdp_config.param_offload"] == offload
    assert got["actor_rollout_ref.actor.fsdp_config.optimizer_offload"] == offload
    cfg = _compose("guardreasoner_vl_grpo", overrides)
    assert cfg.actor_rollout_ref.actor.fsdp_config.param_offload is (offload == "True")


def test_sft_memory_default_and_bad_values():
    assert _as_dict(_sft_overrides({"MODEL_SIZE": "7b", "GPUS_PER_NODE": "2"}, REPO_ROOT))["engine.optimizer_offload"] == "True"
    assert _as_dict(_sft_overrides({"MODEL_SIZE": "7b", "GPUS_PER_NODE": "4"}, REPO_ROOT))["engine.optimizer_offload"] == "False"
    for script, var in (("grpo/run_grpo.sh", "ACTOR_OFFLOAD"), ("sft/run_sft.sh", "OPTIMIZER_OFFLOAD")):
        proc = subprocess.run(
            ["bash", str(REPO_ROOT / "examples" / script)],
            env={**os.environ, var: "yes", "PRINT_OVERRIDES": "1", "PYTHON": sys.executable},
            capture_output=True, text=True,
        )
        assert proc.returncode == 2 and f"{var} must be auto, True or False, got 'yes'" in proc.stderr


@pytest.mark.e2e  # runs the launch script's config check: verl in a fresh interpreter
def test_check_config_full_checks_this_machine(tmp_path):
    proc = subprocess.run(
        ["bash", str(REPO_ROOT / "examples" / "grpo" / "run_grpo.sh")],
        env={**os.environ, "PYTHON": sys.executable, "CHECK_CONFIG": "full", "MODEL_PATH": str(tmp_path / "nope")},
        cwd=tmp_path, capture_output=True, text=True,
    )
    assert proc.returncode == 1
    assert f"actor_rollout_ref.model.path={tmp_path}/nope: no such folder" in proc.stderr
    assert f"data.train_files={tmp_path}/runs/guardreasoner-vl-3b/rl/train.parquet: no such file" in proc.stderr


def _submit(env: dict[str, str], *args: str, cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(REPO_ROOT / "examples" / "grpo" / "submit_ray_job.sh"), *args],
        env={**os.environ, "DRY_RUN": "1", "LOCAL_PYTHON": sys.executable, **env},
        cwd=cwd, capture_output=True, text=True,
    )


def test_ray_job_gets_the_named_and_extra_environment_variables_in_its_runtime_env(tmp_path):
    env = {"WANDB_API_KEY": "s3cret", "HF_HOME": "/shared/hf", "EXTRA_ENV_VARS": "MY_FLAG,OTHER", "MY_FLAG": "1",
           "PYTHONHASHSEED": "0", "CKPT_DIR": "ckpt", "NCCL_ALGO": "Ring"}
    env_without_unset = {k: v for k, v in os.environ.items() if k not in ("OTHER", "HF_TOKEN", "WANDB_BASE_URL")}
    proc = subprocess.run(
        ["bash", str(REPO_ROOT / "examples" / "grpo" / "submit_ray_job.sh")],
        env={**env_without_unset, "DRY_RUN": "1", "LOCAL_PYTHON": sys.executable, **env,
             "RAY_ENV_VARS": "WANDB_API_KEY HF_HOME HF_TOKEN NCCL_ALGO"},
        cwd=tmp_path, capture_output=True, text=True, check=True,
    )
    argv = shlex.split(proc.stdout)
    runtime_env = json.loads(argv[argv.index("--runtime-env-json") + 1])
    # secrets are masked in the dry run; unset names are left out; verl's own names go to the driver only
    assert runtime_env == {"env_vars": {"WANDB_API_KEY": "***", "HF_HOME": "/shared/hf", "MY_FLAG": "1"}}
    entry = argv[argv.index("--") + 1:]
    assert f"CKPT_DIR={tmp_path}/ckpt" in entry and "NCCL_ALGO=Ring" in entry
    assert not any(a.startswith("PYTHONHASHSEED") for a in entry)  # not named in any list: not sent at all
    bad = _submit({"EXTRA_ENV_VARS": "NOT-A-NAME"})
    assert bad.returncode == 2 and "not a variable name: 'NOT-A-NAME'" in bad.stderr


_PROBE = """
import json, os, sys
import ray
from verl.trainer.constants_ppo import get_ppo_ray_runtime_env

# what verl's driver does in run_ppo: ray.init with its own runtime_env, merged with the job's by Ray
ray.init(runtime_env=get_ppo_ray_runtime_env())

@ray.remote
def worker_env(names):
    return {n: os.environ.get(n) for n in names}

names = ["WANDB_API_KEY", "GRV_PROBE", "PYTHONHASHSEED"]
result = {"worker": ray.get(worker_env.remote(names)), "args": sys.argv[1:],
          "paths": {k: os.environ.get(k) for k in ("CKPT_DIR", "TRAIN_FILES")}, "cwd": os.getcwd()}
open(os.environ["PROBE_OUT"], "w").write(json.dumps(result))
"""

_CLUSTER = """
import os, socket, subprocess, sys
import ray

sock = socket.socket(); sock.bind(("127.0.0.1", 0)); port = sock.getsockname()[1]; sock.close()
ray.init(num_cpus=2, include_dashboard=True, dashboard_host="127.0.0.1", dashboard_port=port,
         _node_ip_address="127.0.0.1")
try:
    code = subprocess.run(sys.argv[1:], env={**os.environ, "RAY_ADDRESS": f"http://127.0.0.1:{port}"}).returncode
finally:
    ray.shutdown()
sys.exit(code)
"""


@pytest.mark.e2e
@pytest.mark.slow
def test_submitted_job_hands_the_environment_to_every_ray_worker(tmp_path):
    """A real Ray cluster on loopback, a real `ray job submit`: a worker task sees WANDB_API_KEY, and verl's
    driver-side runtime_env merges with the job's (PYTHONHASHSEED goes through the driver, not the job)."""
    repo = tmp_path / "checkout"
    repo.mkdir()
    (repo / "probe.py").write_text(_PROBE)
    (repo / "probe.sh").write_text('exec "$PYTHON" probe.py "$@"\n')
    (tmp_path / "cluster.py").write_text(_CLUSTER)
    out = tmp_path / "probe.json"
    ray_bin = str(Path(sys.executable).parent / "ray")
    env = {
        **os.environ, "REPO_DIR": str(repo), "ENTRY_SCRIPT": "probe.sh", "PYTHON": sys.executable, "RAY": ray_bin,
        "LOCAL_PYTHON": sys.executable, "WANDB_API_KEY": "s3cret", "EXTRA_ENV_VARS": "GRV_PROBE PROBE_OUT PYTHONHASHSEED",
        "RAY_ENV_VARS": "WANDB_API_KEY", "GRV_PROBE": "42", "PROBE_OUT": str(out), "PYTHONHASHSEED": "7",
        "CKPT_DIR": "ckpt", "OMP_NUM_THREADS": "1",
    }
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.run(
        [sys.executable, str(tmp_path / "cluster.py"), "bash", str(REPO_ROOT / "examples" / "grpo" / "submit_ray_job.sh"),
         "trainer.save_freq=10"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["worker"] == {"WANDB_API_KEY": "s3cret", "GRV_PROBE": "42", "PYTHONHASHSEED": "7"}
    assert result["args"] == ["trainer.save_freq=10"] and result["cwd"] == str(repo)
    assert result["paths"]["CKPT_DIR"] == f"{tmp_path}/ckpt"


# ------------------------------------------------------------------ trainer wiring


def test_trainer_class_is_the_stock_one_plus_the_hooks():
    from verl.trainer.ppo.v1 import PPOTrainerSync, get_trainer_cls

    from recipe.guardreasoner_vl.trainer import GuardReasonerTrainerMixin, _trainer_for_mode, guardreasoner_trainer_cls

    cls = guardreasoner_trainer_cls(PPOTrainerSync)
    assert cls.__mro__[1:3] == (GuardReasonerTrainerMixin, PPOTrainerSync)
    assert guardreasoner_trainer_cls(PPOTrainerSync) is cls and guardreasoner_trainer_cls(cls) is cls
    # the overridden hooks are exactly these; fit() and everything else is verl's
    own = {name for name in vars(GuardReasonerTrainerMixin) if not name.startswith("__")}
    assert own == {"dynamic_clip_enabled", "clip_eps", "on_init_end", "_update_actor", "_val_metrics_update"}
    assert cls.fit is PPOTrainerSync.fit
    with _trainer_for_mode("sync", cls):
        assert get_trainer_cls("sync") is cls
    assert get_trainer_cls("sync") is PPOTrainerSync
    with pytest.raises(TypeError):
        guardreasoner_trainer_cls(dict)


def test_task_runner_is_verls_with_the_trainer_swapped():
    from verl.trainer.main_ppo import TaskRunnerV1

    from recipe.guardreasoner_vl.trainer import GuardReasonerTaskRunner

    plain = GuardReasonerTaskRunner.__ray_actor_class__
    assert issubclass(plain, TaskRunnerV1.__ray_actor_class__)
    assert set(vars(plain)) & {"__init__", "init_agent_loop_manager"} == set()


# ------------------------------------------------------------------ validation F1 (pure)


def test_f1_per_data_source_from_summed_reward_counts():
    from recipe.guardreasoner_vl.val_metrics import f1_from_counts, safety_f1_metrics

    def sample(req, resp=None):  # req/resp in {"tp","fp","fn","tn"}; resp None = no response
        info = {f"request_{c}": float(c == req) for c in ("tp", "fp", "fn", "tn")}
        info.update({f"response_{c}": float(c == resp) for c in ("tp", "fp", "fn", "tn")})
        info["has_response"] = float(resp is not None)
        return info

    per_sample = [("A", sample("tp", "tp")), ("A", sample("fp", "fn")), ("A", sample("tn", "tp")),
                  ("B", sample("tp")), ("B", sample("fn")), ("B", sample("fn"))]
    sources = [s for s, _ in per_sample]
    infos = {key: [info[key] for _, info in per_sample] for key in per_sample[0][1]}
    metrics = safety_f1_metrics(sources, infos)
    # A: request tp=1 fp=1 fn=0 -> 2/3; response tp=2 fp=0 fn=1 -> 4/5.  B: request tp=1 fn=2 -> 2/4.
    assert metrics == {
        "val-core/A/request_f1": pytest.approx(2 / 3),
        "val-core/A/response_f1": pytest.approx(4 / 5),
        "val-core/B/request_f1": pytest.approx(0.5),
    }
    assert f1_from_counts(0, 0, 0) == 0.0 and f1_from_counts(0, 0, 0, zero_division=1.0) == 1.0


def test_f1_needs_the_reward_keys_and_sane_values():
    from recipe.guardreasoner_vl.val_metrics import COUNT_KEYS, safety_f1_metrics

    assert safety_f1_metrics(["A"], {"reward": [0.0]}) == {}  # another reward: no F1, no error
    infos = {key: [0.0, -1.0] for key in COUNT_KEYS}
    with pytest.raises(ValueError, match="validation sample 1 \\(data_source 'A'\\): reward key 'request_tp'"):
        safety_f1_metrics(["A", "A"], infos)
    infos = {key: [0.0, "1"] for key in COUNT_KEYS}
    with pytest.raises(ValueError, match="must be a non-negative number, got '1'"):
        safety_f1_metrics(["A", "A"], infos)


def _infos(samples):
    keys = [f"{t}_{c}" for t in ("request", "response") for c in ("tp", "fp", "fn", "tn")] + ["has_response"]
    return {key: [None if s is None else s.get(key, 0.0) for s in samples] for key in keys}


def test_f1_counts_a_sample_with_missing_values_as_unparsed_and_warns(caplog):
    """verl fills None for a sample whose reward lacks a key: the step goes on, the sample is counted."""
    from recipe.guardreasoner_vl.val_metrics import safety_f1_metrics

    tp = {"request_tp": 1.0}
    fn = {"request_fn": 1.0}
    samples = [tp, fn, None, tp, None]
    sources = ["A", "A", "A", "B", "C"]
    infos = _infos(samples)
    infos["request_fp"][1] = math.nan  # a NaN is missing too
    with caplog.at_level(logging.WARNING, logger="recipe.guardreasoner_vl.val_metrics"):
        metrics = safety_f1_metrics(sources, infos)
    # A: samples 1 (NaN) and 2 (None) unparsed; sample 0 is a tp -> F1 1.0 over the scored sample
    assert metrics == {
        "val-core/A/request_f1": 1.0,
        "val-aux/A/f1_unparsed": 2.0,
        "val-core/B/request_f1": 1.0,
        "val-aux/C/f1_unparsed": 1.0,  # nothing scorable in C: no F1 at all, only the count
    }
    messages = [r.getMessage() for r in caplog.records]
    assert any("data_source 'A': 2 of 3 samples" in m and "request_fp" in m and "indices 1, 2" in m for m in messages)
    assert any("data_source 'C': 1 of 1 samples" in m for m in messages)
    assert not any("'B'" in m for m in messages)


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["A", "B"]),
            st.sampled_from(["tp", "fp", "fn", "tn"]),
            st.booleans(),  # value missing?
        ),
        max_size=30,
    )
)
def test_f1_over_scored_samples_equals_f1_of_the_complete_ones(rows):
    """Whatever is missing, the F1 is the F1 of the scored samples and every sample is accounted for."""
    from recipe.guardreasoner_vl.val_metrics import f1_from_counts, safety_f1_metrics

    samples = [None if missing else {f"request_{c}": 1.0} for _, c, missing in rows]
    metrics = safety_f1_metrics([s for s, _, _ in rows], _infos(samples))
    for source in ("A", "B"):
        scored = [c for s, c, missing in rows if s == source and not missing]
        unparsed = sum(1 for s, _, missing in rows if s == source and missing)
        assert metrics.get(f"val-aux/{source}/f1_unparsed", 0.0) == unparsed
        if scored:
            expected = f1_from_counts(scored.count("tp"), scored.count("fp"), scored.count("fn"))
            assert metrics[f"val-core/{source}/request_f1"] == pytest.approx(expected)
        else:
            assert f"val-core/{source}/request_f1" not in metrics
