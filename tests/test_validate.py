"""validate(config): each check catches, before any GPU is allocated, what the real run would refuse later.

One test (at least) per check, each with a config that fails it, and the paper's layouts that pass.
The configs are the recipe's own, composed by Hydra exactly as the entry point composes them.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

pytest.importorskip("verl")

from recipe.guardreasoner_vl import check_config, host_memory, launch_checks  # noqa: E402
from recipe.guardreasoner_vl.check_config import ConfigCheckError  # noqa: E402

REQUIRED = [
    "data.train_files=/d/train.parquet",
    "data.val_files=/d/val.parquet",
    "actor_rollout_ref.model.path=/m",
    "trainer.default_local_dir=/ckpt",
]


def grpo(*overrides: str, **kwargs):
    return check_config.check("grpo", [*REQUIRED, *overrides], **kwargs)


def sft(*overrides: str, **kwargs):
    return check_config.check("sft", ["data.train_files=/d/sft.parquet", *overrides], **kwargs)


# ------------------------------------------------------------------ batch divisibility (dynamic batch size)


@pytest.mark.parametrize(
    ("nnodes", "gpus"), [(1, 4), (1, 8), (2, 8), (4, 8), (1, 2), (1, 1)], ids=lambda v: str(v)
)
def test_paper_batch_passes_on_power_of_two_layouts(nnodes, gpus):
    report = grpo(f"trainer.nnodes={nnodes}", f"trainer.n_gpus_per_node={gpus}")
    assert {"batch layout", "rollout layout", "verl validate_config"} <= set(report.passed)
    assert report.warnings == []


def test_verl_skips_its_batch_check_under_dynamic_batch_size_but_we_do_not():
    """3 nodes x 8 GPUs: verl's validate_config passes (dynamic bsz), the actor update would assert 4096 % 24."""
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config

    cfg = check_config.compose("guardreasoner_vl_grpo", [*REQUIRED, "trainer.nnodes=3", "trainer.n_gpus_per_node=8"])
    validate_config(config=cfg, use_reference_policy=need_reference_policy(cfg), use_critic=need_critic(cfg))
    with pytest.raises(
        ConfigCheckError,
        match=r"ppo_mini_batch_size x rollout.n = 256 x 16 = 4096 sequences does not divide by its 24 data-parallel"
        r" ranks .* Use 16 or 32 GPUs \(data-parallel sizes that divide 4096\)$",
    ):
        check_config.validate(cfg, "grpo", this_machine=False)


def test_the_fix_names_a_mini_batch_when_one_fits_this_cluster():
    # 6 GPUs: no divisor of 512 prompts gives a mini-batch whose sequences (x 16) divide by 6, so only GPU
    # counts are suggested; with 384 prompts per step, 3 prompts x 16 = 48 sequences do.
    with pytest.raises(ConfigCheckError, match=r"Use 4 or 8 GPUs .*divide 4096\)$"):
        grpo("trainer.n_gpus_per_node=6")
    with pytest.raises(ConfigCheckError, match=r"Use 4 or 8 GPUs .*, or actor_rollout_ref\.actor\.ppo_mini_batch_size=3$"):
        grpo("trainer.n_gpus_per_node=6", "data.train_batch_size=384", "actor_rollout_ref.actor.ppo_mini_batch_size=4")


def test_sequence_parallel_shrinks_the_data_parallel_size():
    with pytest.raises(ConfigCheckError, match=r"ulysses_sequence_parallel_size=3 must divide the 8 GPUs"):
        grpo("trainer.n_gpus_per_node=8", "actor_rollout_ref.actor.ulysses_sequence_parallel_size=3")


def test_token_budget_below_the_longest_sequence():
    with pytest.raises(
        ConfigCheckError,
        match=r"ppo_max_token_len_per_gpu=4096 .* below the longest sequence, .* = 6144.*set actor_rollout_ref"
        r"\.actor\.ppo_max_token_len_per_gpu>=6144",
    ):
        grpo("actor_rollout_ref.actor.ppo_max_token_len_per_gpu=4096")


def test_gen_batch_size_must_divide_the_prompts_of_a_step():
    with pytest.raises(ConfigCheckError, match=r"512 prompts, which must be a multiple of data.gen_batch_size=100"):
        grpo("+data.gen_batch_size=100")


def test_a_train_batch_that_is_not_a_whole_number_of_mini_batches_warns_about_padding():
    report = grpo("data.train_batch_size=384")
    assert report.warnings and "6144 sequences are padded with 2048 synthetic ones" in report.warnings[0]


# ------------------------------------------------------------------ rollout tensor parallel vs GPUs per node


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        (["actor_rollout_ref.rollout.tensor_model_parallel_size=3", "trainer.n_gpus_per_node=8"],
         r"a rollout replica takes 3 GPUs .* does not divide the run's 8 GPUs"),
        (["actor_rollout_ref.rollout.tensor_model_parallel_size=4", "trainer.nnodes=2", "trainer.n_gpus_per_node=6",
          "actor_rollout_ref.actor.ppo_mini_batch_size=240"],
         r"replica of 4 GPUs .* does not divide the 6 GPUs of a node, so some replica would straddle two nodes"),
        (["actor_rollout_ref.rollout.tensor_model_parallel_size=12", "trainer.nnodes=3", "trainer.n_gpus_per_node=8",
          "actor_rollout_ref.actor.ppo_mini_batch_size=240"],
         r"replica of 12 GPUs .* must then take whole nodes"),
    ],
    ids=["tp3-on-8", "tp4-on-2x6", "tp12-on-3x8"],
)
def test_rollout_replicas_must_tile_the_nodes(overrides, match):
    with pytest.raises(ConfigCheckError, match=match):
        grpo(*overrides)


def test_rollout_tensor_parallel_that_divides_the_node_passes():
    report = grpo("actor_rollout_ref.rollout.tensor_model_parallel_size=2", "trainer.n_gpus_per_node=8")
    assert "rollout layout" in report.passed
    report = grpo("actor_rollout_ref.rollout.tensor_model_parallel_size=16", "trainer.nnodes=2",
                  "trainer.n_gpus_per_node=8")
    assert "rollout layout" in report.passed


# ------------------------------------------------------------------ reward manager and reward function


def test_misspelt_reward_manager_fails_with_the_registered_names():
    with pytest.raises(
        ConfigCheckError,
        match=r"reward manager 'guardreasoner_tokn_length' \(source register\) does not resolve: ValueError: Unknown"
        r" reward manager: guardreasoner_tokn_length; registered: .*guardreasoner_token_length",
    ):
        grpo("reward.reward_manager.name=guardreasoner_tokn_length")


def test_reward_manager_from_a_module_that_does_not_exist():
    with pytest.raises(ConfigCheckError, match=r"reward manager 'MyManager' \(source importlib\) does not resolve"):
        grpo("reward.reward_manager.source=importlib", "reward.reward_manager.name=MyManager",
             "reward.reward_manager.module.path=pkg://no_such_package.managers")


def test_reward_function_path_that_does_not_import():
    with pytest.raises(ConfigCheckError, match=r"reward function pkg://rewards\.no_such_module:compute_score does not load"):
        grpo("reward.custom_reward_function.path=pkg://rewards.no_such_module", "reward.custom_reward_function.reward_kwargs={}")


# ------------------------------------------------------------------ trainer.use_v1


def test_use_v1_off_is_refused():
    with pytest.raises(ConfigCheckError, match=r"set trainer\.use_v1=True"):
        grpo("trainer.use_v1=False")


# ------------------------------------------------------------------ model folder and data files


@pytest.fixture()
def data_files(tmp_path):
    train, val = tmp_path / "train.parquet", tmp_path / "val.parquet"
    train.write_bytes(b"x")
    val.write_bytes(b"x")
    return [f"data.train_files={train}", f"data.val_files={val}"]


def _cpu_grpo(model, data, *extra, this_machine=True):
    from recipe.guardreasoner_vl.cpu_backend.overrides import CPU_OVERRIDES

    return check_config.check(
        "grpo",
        [*CPU_OVERRIDES, *data, f"actor_rollout_ref.model.path={model}", "data.train_batch_size=4",
         "actor_rollout_ref.rollout.n=2", "actor_rollout_ref.actor.ppo_mini_batch_size=4", *extra],
        this_machine=this_machine,
    )


def test_cpu_config_with_the_tiny_model_passes_every_check_of_this_machine(tiny_model_dir, data_files):
    report = _cpu_grpo(tiny_model_dir, data_files)
    assert {"model folder", "data files", "reward manager", "reward function", "guardreasoner"} <= set(report.passed)
    assert not any("packages" in s for s in report.skipped)  # a CPU run needs neither flash-attn nor vLLM


def test_missing_model_folder_is_refused_on_this_machine_and_skipped_elsewhere(tmp_path, data_files):
    missing = tmp_path / "models" / "r-sft"
    with pytest.raises(ConfigCheckError, match=rf"actor_rollout_ref\.model\.path={missing}: no such folder"):
        _cpu_grpo(missing, data_files)
    report = _cpu_grpo(missing, data_files, this_machine=False)
    assert any(s.startswith(f"model (actor_rollout_ref.model.path={missing} is not a local folder yet") for s in report.skipped)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda d: None, r"no config\.json \(export the checkpoint with export_hf first\)"),
        (lambda d: (d / "config.json").write_text("{not json"), r"config\.json unreadable"),
        (lambda d: (d / "config.json").write_text(json.dumps({"model_type": "qwen2_5_vl"})), r"no weights"),
    ],
    ids=["no-config", "bad-config", "no-weights"],
)
def test_model_folder_that_is_not_a_model_is_refused_even_when_only_the_config_is_checked(tmp_path, data_files, make, match):
    folder = tmp_path / "model"
    folder.mkdir()
    make(folder)
    with pytest.raises(ConfigCheckError, match=match):
        _cpu_grpo(folder, data_files, this_machine=False)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file whatever its mode")
def test_unreadable_model_folder_is_refused(tiny_model_dir, tmp_path, data_files):
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    folder.chmod(0)
    try:
        with pytest.raises(ConfigCheckError, match=r"folder not readable by this user"):
            _cpu_grpo(folder, data_files)
    finally:
        folder.chmod(0o755)


def test_missing_data_file_is_refused_on_this_machine(tiny_model_dir, tmp_path):
    with pytest.raises(ConfigCheckError, match=rf"data\.val_files={tmp_path}/val\.parquet: no such file"):
        _cpu_grpo(tiny_model_dir, [f"data.train_files={tiny_model_dir}/config.json", f"data.val_files={tmp_path}/val.parquet"])


def test_relative_paths_are_refused_in_a_multi_node_run():
    with pytest.raises(
        ConfigCheckError,
        match=r"relative path\(s\) in a 2-node run: data\.train_files=rl/train\.parquet, "
        r"trainer\.default_local_dir=checkpoints/guardreasoner_vl/grpo",
    ):
        check_config.check(
            "grpo",
            ["data.train_files=rl/train.parquet", "data.val_files=/d/val.parquet", "actor_rollout_ref.model.path=/m",
             "trainer.nnodes=2", "trainer.n_gpus_per_node=8"],
        )


def test_hub_model_id_is_not_a_relative_path():
    report = sft("trainer.nnodes=2", "trainer.default_local_dir=/ckpt", "data.train_files=/d/sft.parquet")
    assert any(s.startswith("model (model.path=Qwen/Qwen2.5-VL-3B-Instruct is a hub id") for s in report.skipped)


# ------------------------------------------------------------------ flash-attn and vLLM


def _installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


@pytest.mark.skipif(_installed("vllm") and _installed("flash_attn"), reason="this host has the GPU stack")
def test_gpu_config_on_a_host_without_flash_attn_or_vllm_is_refused(tiny_model_dir, data_files):
    """The paper config on a CUDA host needs flash-attn (flash_attention_2, padding removal) and vLLM."""
    overrides = [*data_files, f"actor_rollout_ref.model.path={tiny_model_dir}"]
    with pytest.raises(ConfigCheckError) as err:
        check_config.check("grpo", overrides, this_machine=True)
    message = str(err.value)
    if not _installed("flash_attn"):
        assert "flash_attn is not installed but the config needs it (actor_rollout_ref.model.override_config" in message
        assert "pip install --no-build-isolation -c requirements/gpu.txt flash-attn" in message
    if not _installed("vllm"):
        assert "vllm is not installed but the config needs it (actor_rollout_ref.rollout.name=vllm)" in message
    # the same config checked for another machine: the packages are skipped, not refused
    report = check_config.check("grpo", overrides, this_machine=False)
    assert any(s.startswith("packages (flash_attn, vllm not checked") for s in report.skipped)


@pytest.mark.skipif(_installed("flash_attn"), reason="flash-attn is installed here")
def test_sft_on_cuda_without_flash_attn_is_refused_and_sdpa_is_the_way_out(tiny_model_dir, tmp_path):
    train = tmp_path / "sft.parquet"
    train.write_bytes(b"x")
    base = [f"data.train_files={train}", f"model.path={tiny_model_dir}", "trainer.device=cuda"]
    with pytest.raises(ConfigCheckError, match=r"flash_attn is not installed but the config needs it \(model\.override"):
        check_config.check("sft", base, this_machine=True)
    report = check_config.check(
        "sft", [*base, "+model.override_config.attn_implementation=sdpa", "model.use_remove_padding=False"],
        this_machine=True,
    )
    assert "model folder" in report.passed and "packages" not in " ".join(report.skipped)


# ------------------------------------------------------------------ host memory of a step


def test_host_memory_warning_for_the_papers_batch():
    report = grpo(host_memory_gib=64)
    assert len(report.warnings) == 1
    warning = report.warnings[0]
    # 8192 samples x (one image at 1280 visual tokens = 24.1 MB + tokens) on one node: ~190 GiB
    assert warning.startswith("TransferQueue holds up to 18") and "8192 samples" in warning
    assert "more than the 64 GiB of host memory per node given" in warning
    assert "host memory" in grpo(host_memory_gib=4096).passed


def test_host_memory_estimate_reads_images_and_max_pixels_from_the_rl_parquet(tmp_path):
    from data_prep.readers import read_vltrain
    from data_prep.writers import ImageOptions, write_rl
    from demo.sample import VLTRAIN_DIR

    records = list(read_vltrain(VLTRAIN_DIR))[:40]
    path = tmp_path / "train.parquet"
    write_rl(records, path, options=ImageOptions(max_pixels=501760))
    images, max_pixels, source = host_memory.data_image_stats(str(path))
    expected = sum(len(r.images) for r in records) / len(records)
    assert images == pytest.approx(expected) and 0 < images < 1
    assert max_pixels == 501760 and source == "from the first 40 rows of train.parquet"
    assert host_memory.data_image_stats("/no/such.parquet")[2].startswith("assumed")


# ------------------------------------------------------------------ several problems at once, the CLI


def test_every_problem_is_reported_at_once():
    with pytest.raises(ConfigCheckError, match=r"3 problems:\n  - .*use_v1.*\n  - .*4096 sequences.*\n  - .*replica"):
        grpo("trainer.use_v1=False", "trainer.nnodes=3", "trainer.n_gpus_per_node=8",
             "actor_rollout_ref.rollout.tensor_model_parallel_size=3")


def test_cli_prints_warnings_and_checks_this_machine(tmp_path, capsys):
    from cli.main import main

    assert main(["check-config", "--host-memory-gib", "64", "grpo", *REQUIRED]) == 0
    captured = capsys.readouterr()
    assert "check-config: warning: TransferQueue holds up to" in captured.err
    assert "config ok: grpo (guardreasoner_vl_grpo): composed" in captured.out
    assert main(["check-config", "--this-machine", "grpo", *REQUIRED]) == 1
    assert "actor_rollout_ref.model.path=/m: no such folder" in capsys.readouterr().err


# ------------------------------------------------------------------ the entry points call it


def test_sft_entry_point_validates_before_torch_distributed(tmp_path):
    import torch.distributed

    from recipe.guardreasoner_vl import main_sft

    cfg = check_config.compose("guardreasoner_vl_sft", ["data.train_files=/no/sft.parquet", "trainer.n_gpus_per_node=5"])
    with pytest.raises(ConfigCheckError, match=r"train_batch_size=192 must divide by .* = 5") as err:
        main_sft.run(cfg)
    assert "data.train_files=/no/sft.parquet: no such file" in str(err.value)
    assert not torch.distributed.is_initialized()


def test_grpo_entry_point_validates_before_ray(tmp_path):
    import ray

    from recipe.guardreasoner_vl import main_grpo

    cfg = check_config.compose("guardreasoner_vl_grpo", [*REQUIRED, "trainer.nnodes=3", "trainer.n_gpus_per_node=8"])
    with pytest.raises(ConfigCheckError, match=r"4096 sequences does not divide by its 24 data-parallel ranks"):
        main_grpo.run(cfg)
    assert not ray.is_initialized()


def test_launch_checks_need_no_files_or_packages():
    """The pure checks read only the config (world size helper included)."""
    cfg = check_config.compose("guardreasoner_vl_grpo", [*REQUIRED, "trainer.nnodes=2", "trainer.n_gpus_per_node=8"])
    assert launch_checks.world_size(cfg) == 16
    assert launch_checks.grpo_batch_problems(cfg) == [] and launch_checks.rollout_layout_problems(cfg) == []
    assert sys.modules.get("vllm") is None
    assert Path(check_config.__file__).parent == Path(launch_checks.__file__).parent
