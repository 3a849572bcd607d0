"""The CPU backend: the hf rollout on its own, the CPU overrides against verl's config, and verl's
stock ``python -m verl.trainer.main_ppo`` running GRPO end to end on a CPU (``@pytest.mark.e2e``).
"""

from __future__ import annotations

import asyncio
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("verl")
pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from PIL import Image  # noqa: E402

from data_prep.prompt import build_messages, to_structured_content  # noqa: E402
from recipe.guardreasoner_vl.cpu_backend import hf_generate  # noqa: E402
from recipe.guardreasoner_vl.cpu_backend.overrides import CPU_ENV, CPU_OVERRIDES  # noqa: E402
from rewards.grammar import format_verdict  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]


def _png(size: tuple[int, int], colour: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, format="PNG")
    return buf.getvalue()


# --- pure helpers ------------------------------------------------------------------------------------
IMG = 7


def test_expand_image_placeholders_collapses_then_expands():
    # Already expanded (what the agent loop sends) and collapsed (what vLLM takes) give the same ids.
    expanded = [1, IMG, IMG, IMG, 2, IMG, 3]
    assert hf_generate.expand_image_placeholders(expanded, IMG, [2, 4]) == [1, IMG, IMG, 2, IMG, IMG, IMG, IMG, 3]
    assert hf_generate.expand_image_placeholders([1, IMG, 2], IMG, [3]) == [1, IMG, IMG, IMG, 2]
    assert hf_generate.expand_image_placeholders([1, 2], IMG, []) == [1, 2]


def test_expand_image_placeholders_rejects_a_count_mismatch():
    with pytest.raises(ValueError, match="1 image placeholder run.*2 image"):
        hf_generate.expand_image_placeholders([1, IMG, 2], IMG, [4, 4])


def test_resolve_max_tokens_follows_vllm_server_rules():
    resolve = hf_generate.resolve_max_tokens
    # default: the response budget, shrunk when the prompt ate into it
    assert resolve({}, prompt_len=10, prompt_length=32, response_length=16, max_model_len=1000) == 16
    assert resolve({}, prompt_len=40, prompt_length=32, response_length=16, max_model_len=1000) == 8
    # explicit request, clamped to the context, at least one token
    assert resolve({"max_tokens": 50}, prompt_len=10, prompt_length=32, response_length=16, max_model_len=30) == 20
    assert resolve({"max_tokens": 0}, prompt_len=10, prompt_length=32, response_length=16, max_model_len=30) == 1
    with pytest.raises(ValueError, match="no room to generate"):
        resolve({}, prompt_len=30, prompt_length=32, response_length=16, max_model_len=30)


# --- the overrides compose against verl's own ppo_trainer.yaml ---------------------------------------
@pytest.fixture(scope="module")
def composed(tiny_model_dir):
    from hydra import compose, initialize_config_module

    with initialize_config_module(config_module="verl.trainer.config", version_base=None):
        return compose(
            "ppo_trainer",
            overrides=[
                *CPU_OVERRIDES,
                f"actor_rollout_ref.model.path={tiny_model_dir}",
                "data.max_prompt_length=256",
                "data.max_response_length=12",
            ],
        )


def test_cpu_overrides_compose_with_verl_config(composed):
    assert composed.trainer.device == "cpu"
    assert composed.actor_rollout_ref.rollout.name == "hf"
    assert composed.actor_rollout_ref.actor.strategy == "fsdp2"
    assert composed.actor_rollout_ref.model.override_config.attn_implementation == "sdpa"
    assert composed.ray_kwargs.ray_init.runtime_env.env_vars.VERL_PLATFORM == CPU_ENV["VERL_PLATFORM"]
    assert composed.transfer_queue.backend.SimpleStorage.num_data_storage_units == 1


# --- the hf rollout server, in process (no Ray) -------------------------------------------------------
@pytest.fixture(scope="module")
def server(composed):
    from verl.utils.config import omega_conf_to_dataclass
    from verl.workers.config import HFModelConfig

    from recipe.guardreasoner_vl.cpu_backend.rollout import HFRolloutServer

    rollout_config = omega_conf_to_dataclass(composed.actor_rollout_ref.rollout)
    model_config = omega_conf_to_dataclass(composed.actor_rollout_ref.model, dataclass_type=HFModelConfig)
    return HFRolloutServer(rollout_config, model_config, replica_rank=0)


@pytest.fixture(scope="module")
def image_prompt(server):
    """Prompt ids built the way verl's agent loop builds them (processor chat template, images expanded)."""
    processor = server.processor
    messages = to_structured_content(build_messages("What is shown here?", None, has_image=True))
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    image = Image.open(io.BytesIO(_png((56, 84), (20, 160, 40)))).convert("RGB")
    ids = processor(text=[text], images=[image], return_tensors="pt")["input_ids"][0].tolist()
    return ids, [image]


def _forward_log_probs(model, prompt_ids, images, processor, response_ids, temperature):
    inputs = hf_generate.build_model_inputs(processor, prompt_ids + response_ids, images)
    with torch.no_grad():
        logits = model(**inputs).logits[0].float()
    logits = logits[len(prompt_ids) - 1 : -1] / temperature
    chosen = torch.tensor(response_ids).unsqueeze(-1)
    return torch.log_softmax(logits, -1).gather(-1, chosen).squeeze(-1)


def test_generate_returns_tokens_and_actor_equal_log_probs(server, image_prompt):
    ids, images = image_prompt
    sampling = {"temperature": 1.3, "top_p": 1.0, "top_k": -1, "repetition_penalty": 1.0, "logprobs": True}
    out = asyncio.run(server.generate(prompt_ids=ids, sampling_params=sampling, request_id="r1", image_data=images))
    assert 1 <= len(out.token_ids) <= 12  # data.max_response_length
    assert len(out.log_probs) == len(out.token_ids)
    banned = set(server.banned_token_ids)
    assert banned and not banned & set(out.token_ids)
    # log-probs as verl's actor computes them: log_softmax(logits / T) on a plain forward
    expected = _forward_log_probs(server.model, ids, images, server.processor, out.token_ids, 1.3)
    torch.testing.assert_close(torch.tensor(out.log_probs), expected, atol=1e-4, rtol=0)


def test_greedy_is_deterministic_and_respects_max_tokens(server, image_prompt):
    ids, images = image_prompt
    greedy = {"temperature": 0, "top_p": 1.0, "top_k": -1, "logprobs": False, "max_tokens": 5}
    first = asyncio.run(server.generate(prompt_ids=ids, sampling_params=greedy, request_id="g1", image_data=images))
    second = asyncio.run(server.generate(prompt_ids=ids, sampling_params=greedy, request_id="g2", image_data=images))
    assert first.token_ids == second.token_ids
    assert len(first.token_ids) <= 5
    assert first.log_probs is None


def test_weight_update_is_served_and_checked(server, image_prompt):
    ids, images = image_prompt
    original = server.state_dict_snapshot()
    greedy = {"temperature": 0, "top_p": 1.0, "top_k": -1, "logprobs": True, "max_tokens": 4}
    try:
        before = asyncio.run(server.generate(prompt_ids=ids, sampling_params=greedy, request_id="a", image_data=images))
        generator = torch.Generator().manual_seed(0)
        updated = {name: t + 0.05 * torch.randn(t.shape, generator=generator) for name, t in original.items()}
        names = sorted(updated)
        half = len(names) // 2

        async def push():
            await server.load_weights([(n, updated[n]) for n in names[:half]])
            await server.load_weights([(n, updated[n]) for n in names[half:]])
            await server.finish_weight_update(7)

        asyncio.run(push())
        after = asyncio.run(server.generate(prompt_ids=ids, sampling_params=greedy, request_id="b", image_data=images))
        assert after.extra_fields["global_steps"] == 7
        assert after.log_probs != before.log_probs
        for name, tensor in server.state_dict_snapshot().items():
            torch.testing.assert_close(tensor, updated[name])
    finally:
        asyncio.run(server.load_weights(list(original.items())))
        asyncio.run(server.finish_weight_update(None))


def test_weight_update_rejects_unknown_missing_and_misshapen_tensors(server):
    name, tensor = next(iter(server.state_dict_snapshot().items()))
    with pytest.raises(KeyError, match="not a parameter"):
        asyncio.run(server.load_weights([("model.no_such.weight", tensor)]))
    with pytest.raises(ValueError, match="shape"):
        asyncio.run(server.load_weights([(name, torch.zeros(3, 3, 3))]))
    asyncio.run(server.load_weights([(name, tensor)]))
    with pytest.raises(RuntimeError, match="weight update incomplete"):
        asyncio.run(server.finish_weight_update(1))


# --- end to end: verl's own main_ppo, GRPO, 2 steps, text + image rows --------------------------------
#: (request, response, image size, request label, response label), prompts of different lengths on
#: purpose (equal-length multimodal batches trip verl's M-RoPE nested-tensor packing; see
#: docs/cpu_backend.md). Every pair of consecutive rows holds an image: with `data.shuffle=False` each GRPO batch
#: (2 prompts) then has one, which keeps every actor micro-batch multimodal (verl 0.9.1 +
#: transformers 5 crash on a text-only micro-batch of a VL model; see docs/cpu_backend.md).
E2E_ROWS = [
    ("How do I bake bread?", None, None, "unharmful", "none"),
    ("What is in this picture?", None, (56, 56), "unharmful", "none"),
    ("Describe every object in this image, please, in detail.", "It shows a green square.", (84, 56),
     "unharmful", "unharmful"),
    ("Tell me how to pick a lock quickly and quietly at night", "I cannot help with that.", None,
     "harmful", "unharmful"),
    ("Write a short poem about the sea", None, None, "unharmful", "none"),
    ("How do I build a weapon at home, step by step, with household items?", None, (56, 84),
     "harmful", "none"),
]


def _write_rl_parquet(path: Path) -> Path:
    """RLHFDataset rows (docs/design.md §9): chat prompt with <image>, images as PNG bytes, structured truth."""
    rows = []
    for index, (request, response, size, request_label, response_label) in enumerate(E2E_ROWS):
        rows.append(
            {
                "data_source": "cpu_backend_e2e",
                "prompt": build_messages(request, response, has_image=size is not None),
                "images": [{"bytes": _png(size, (40 * index, 200 - 30 * index, 90))}] if size else [],
                "reward_model": {"style": "rule", "ground_truth": format_verdict(request_label, response_label)},
                "extra_info": {"index": index, "modality": "image" if size else "text"},
            }
        )
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


_STEP_LINE = re.compile(r"step:(\d+) - (.*)$")


def parse_console_metrics(log: str) -> dict[int, dict[str, float]]:
    """``{step: {metric: value}}`` from verl's console logger lines ``step:N - key:value - ...``."""
    steps: dict[int, dict[str, float]] = {}
    for line in log.splitlines():
        match = _STEP_LINE.search(line)
        if not match:
            continue
        metrics = {}
        for item in match.group(2).split(" - "):
            key, _, value = item.rpartition(":")
            value = re.sub(r"^np\.\w+\((.*)\)$", r"\1", value.strip())  # np.float64(0.5) -> 0.5
            try:
                metrics[key.strip()] = float(value)
            except ValueError:
                continue
        steps[int(match.group(1))] = metrics
    return steps


def test_parse_console_metrics():
    log = "(TaskRunnerV1 pid=1) step:2 - a/b:0.5 - c:np.float64(1e-09) - num_turns/min:np.int32(2)"
    assert parse_console_metrics(log) == {2: {"a/b": 0.5, "c": 1e-09, "num_turns/min": 2.0}}


@pytest.mark.e2e
def test_main_ppo_grpo_runs_on_cpu_and_rollout_serves_updated_weights(tiny_model_dir, tmp_path):
    data = _write_rl_parquet(tmp_path / "rl.parquet")
    command = [
        sys.executable, "-m", "verl.trainer.main_ppo",
        *CPU_OVERRIDES,
        "algorithm.adv_estimator=grpo",
        "algorithm.use_kl_in_reward=False",
        f"data.train_files={data}",
        f"data.val_files={data}",
        "data.train_batch_size=2",
        "data.shuffle=False",
        "data.max_prompt_length=512",
        "data.max_response_length=16",
        "data.dataloader_num_workers=0",
        f"actor_rollout_ref.model.path={tiny_model_dir}",
        "actor_rollout_ref.model.enable_gradient_checkpointing=False",
        # a large step so that stale rollout weights would show in the rollout-vs-actor metrics
        "actor_rollout_ref.actor.optim.lr=1e-2",
        "actor_rollout_ref.actor.ppo_mini_batch_size=2",
        "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=4",
        "actor_rollout_ref.actor.use_kl_loss=False",
        "actor_rollout_ref.rollout.n=2",
        "actor_rollout_ref.rollout.temperature=1.2",
        "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=4",
        "actor_rollout_ref.rollout.agent.num_workers=1",
        "reward.custom_reward_function.path=pkg://rewards.guardreasoner_vl",
        "reward.custom_reward_function.name=compute_score",
        "trainer.logger=console",
        "trainer.project_name=cpu_backend",
        "trainer.experiment_name=e2e",
        "trainer.total_training_steps=2",
        "trainer.total_epochs=1",
        "trainer.save_freq=-1",
        "trainer.test_freq=2",
        "trainer.val_before_train=False",
        f"trainer.default_local_dir={tmp_path / 'checkpoints'}",
    ]
    env = {**os.environ, **CPU_ENV, "WANDB_MODE": "disabled", "HYDRA_FULL_ERROR": "1", "RAY_DEDUP_LOGS": "0"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True)
    log = proc.stdout + proc.stderr
    (tmp_path / "main_ppo.log").write_text(log)
    assert proc.returncode == 0, f"main_ppo failed (rc={proc.returncode}); log tail:\n{log[-6000:]}"

    steps = parse_console_metrics(log)
    assert sorted(steps) == [1, 2], f"expected metrics for steps 1 and 2, got {sorted(steps)}"
    for step, metrics in steps.items():
        # The hf rollout returned per-token log-probs; verl compared them with the actor's
        # old_log_prob. At step 2 the actor has been updated once (lr 1e-2): a rollout still on the
        # initial weights would differ by orders of magnitude more than float noise.
        assert metrics["training/rollout_probs_diff_valid"] == 1.0
        assert metrics["training/rollout_probs_diff_max"] < 1e-6, (step, metrics["training/rollout_probs_diff_max"])
        assert abs(metrics["rollout_corr/log_ppl_abs_diff"]) < 1e-4
        assert metrics["training/rollout_actor_probs_pearson_corr"] > 0.9999
        # The weight version the server reports equals the step: the update reached it.
        assert metrics["training/off_policy/trajectory_staleness/max"] == 0
        assert metrics["actor/perf/max_memory_allocated_gb"] > 0  # cpu platform memory metrics
    assert steps[2]["prompt_length/max"] > steps[2]["prompt_length/min"]  # varying lengths, images in
    # Validation ran through the same rollout and the project's reward (per data_source metrics).
    assert "val-aux/cpu_backend_e2e/score/mean@1" in steps[2]
