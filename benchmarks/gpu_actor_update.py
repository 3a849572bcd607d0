"""One GRPO actor update through verl's ``TrainingWorker``: the recipe's dynamic-clip loss vs ``vanilla``.

On one H100/H200 this builds a randomly initialised full-size Qwen2.5-VL-3B (bf16 compute, FSDP2, fp32
master weights), a batch of image + text GRPO samples of varying lengths, and times one actor update
(``train_mini_batch``, as ``update_actor`` runs it) with each loss on the same batch, alternating
(so each update starts from the weights the previous one left; at lr 1e-6 that changes nothing measurable):
``ScheduledClipLoss`` with the clip value carried in the batch (as the GuardReasoner trainer sends it)
and verl's stock ``partial(ppo_loss, config=...)`` with ``loss_mode=vanilla``. It prints wall time and
peak accelerator memory of each update and writes them as JSON.

``--tiny`` runs the same code on the tiny random Qwen2.5-VL on CPU in seconds (the recipe's CPU
backend), which is how the tests exercise it.

On a bare GPU host without Ray, TransferQueue, vLLM (verl imports them at module level but a
single-process worker never uses them) ``--stub-missing`` installs permissive stand-ins for exactly
those modules when they are not importable (docs/gpu_guide.md lists the wheels such a host needs)::

    python benchmarks/gpu_actor_update.py --stub-missing --json gpu_actor_update.json   # GPU, 3B
    python benchmarks/gpu_actor_update.py --tiny --json /tmp/tiny.json                  # CPU, seconds
    python benchmarks/gpu_actor_update.py --tiny --stub-all     # rehearse the bare host on a full install

Sizes: 8 sequences, responses up to 2048 tokens (decreasing by sample so every length differs, as
verl's nested M-RoPE packing needs), one image each. The images go through the tiny model's processor
(its pixel budget gives 4-16 visual tokens), so the tokens are mostly text, as in the guard's data.
"""

from __future__ import annotations

import argparse
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import platform
import shutil
import socket
import sys
import tempfile
import time
import types
from pathlib import Path
from typing import Any, Optional
from unittest import mock

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

#: Modules verl imports at module level that a single-process TrainingWorker never calls.
STUBBABLE = ("ray", "transfer_queue", "fastapi", "uvicorn", "starlette", "zmq", "nvtx", "opentelemetry")

#: Qwen2.5-VL-3B-Instruct dimensions (config.json of the released model).
QWEN25_VL_3B_TEXT = dict(
    hidden_size=2048,
    intermediate_size=11008,
    num_hidden_layers=36,
    num_attention_heads=16,
    num_key_value_heads=2,
    vocab_size=151936,
    tie_word_embeddings=True,
)
QWEN25_VL_3B_VISION = dict(
    depth=32,
    hidden_size=1280,
    intermediate_size=3420,
    num_heads=16,
    out_hidden_size=2048,
    fullatt_block_indexes=[7, 15, 23, 31],
    window_size=112,
)
MROPE_SECTION_3B = [16, 24, 24]
CLIP_EPS = 0.1


# ----------------------------------------------------------------------------- import stubs


class _StubModule(types.ModuleType):
    """Anything goes: capitalised names are empty classes (verl does isinstance checks on them),
    ``remote`` is an identity decorator, everything else a MagicMock."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        if name == "remote":
            value: Any = lambda *a, **k: a[0] if a and callable(a[0]) and not k else (lambda f: f)  # noqa: E731
        elif name[:1].isupper():
            value = type(name, (), {})
        else:
            value = mock.MagicMock(name=f"{self.__name__}.{name}")
        setattr(self, name, value)
        return value


class _StubFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def __init__(self, roots: set[str]) -> None:
        self.roots = roots

    def find_spec(self, fullname, path=None, target=None):
        if fullname.split(".")[0] in self.roots:
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        module = _StubModule(spec.name)
        module.__path__ = []
        return module

    def exec_module(self, module) -> None:
        return None


def install_stubs(everything: bool = False) -> list[str]:
    """Stub the :data:`STUBBABLE` modules that are not installed (all of them with ``everything``,
    to rehearse a bare GPU host on a full install); returns their names."""
    missing = {name for name in STUBBABLE if everything or importlib.util.find_spec(name) is None}
    if missing:
        sys.meta_path.insert(0, _StubFinder(missing))
    return sorted(missing)


# ----------------------------------------------------------------------------- model


def full_size_model(tiny_dir: Path, out: Path, device: str) -> Path:
    """A random Qwen2.5-VL-3B (tiny model's tokenizer and processor) saved to ``out``."""
    import torch
    from transformers import AutoConfig, Qwen2_5_VLForConditionalGeneration

    config = AutoConfig.from_pretrained(tiny_dir)
    for key, value in QWEN25_VL_3B_TEXT.items():
        setattr(config.text_config, key, value)
    config.text_config.layer_types = ["full_attention"] * QWEN25_VL_3B_TEXT["num_hidden_layers"]
    rope = dict(getattr(config.text_config, "rope_parameters", None) or config.text_config.rope_scaling or {})
    rope["mrope_section"] = MROPE_SECTION_3B
    if getattr(config.text_config, "rope_parameters", None) is not None:
        config.text_config.rope_parameters = rope
    else:
        config.text_config.rope_scaling = rope
    for key, value in QWEN25_VL_3B_VISION.items():
        setattr(config.vision_config, key, value)
    config.tie_word_embeddings = True
    with torch.device(device):
        model = Qwen2_5_VLForConditionalGeneration._from_config(config, dtype=torch.bfloat16)
    model.save_pretrained(out)
    del model
    for item in tiny_dir.iterdir():  # tokenizer, processor, chat template
        if item.is_file() and not item.name.startswith(("model", "config.json", "generation_config")):
            shutil.copy2(item, out / item.name)
    return out


# ----------------------------------------------------------------------------- batch


def build_batch(model_dir: Path, samples: int, response_len: int, image_side: int, seed: int):
    """GRPO samples as verl's agent loop stores them (one image each, varying text and response lengths)."""
    import torch
    from PIL import Image
    from transformers import AutoConfig, AutoProcessor, Qwen2_5_VLForConditionalGeneration

    from data_prep.prompt import build_messages, to_structured_content

    processor = AutoProcessor.from_pretrained(model_dir)
    config = AutoConfig.from_pretrained(model_dir)
    with torch.device("meta"):
        rope_model = Qwen2_5_VLForConditionalGeneration._from_config(config).model
    gen = torch.Generator().manual_seed(seed)
    image_id = config.image_token_id
    words = "how do i get rid of the smell of smoke in my old car before selling it tomorrow".split()
    rows, seen_lengths = [], set()
    for i in range(samples):
        request = " ".join(words[(i + j) % len(words)] for j in range(4 + 3 * i))
        messages = to_structured_content(build_messages(request, None, has_image=True))
        prompt = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        side = image_side + 28 * (i % 3)
        image = Image.new("RGB", (side, side), (30 * i % 255, 90, 160))
        enc = processor(text=[prompt], images=[image], return_tensors="pt")
        prompt_ids = enc["input_ids"][0]
        # Response tokens: ordinary text ids of the tokenizer, never a special or vision token.
        n_resp = max(4, response_len - (i * response_len) // (2 * samples))
        while prompt_ids.numel() + n_resp in seen_lengths:  # every sequence length distinct
            n_resp += 1
        seen_lengths.add(prompt_ids.numel() + n_resp)
        response_ids = torch.randint(10, min(len(processor.tokenizer), 3000), (n_resp,), generator=gen)
        # A special id (e.g. <|image_pad|>) in a response would be read as an image token: replace them.
        special = torch.tensor(sorted(set(processor.tokenizer.all_special_ids) | set(processor.tokenizer.added_tokens_decoder)))
        response_ids[torch.isin(response_ids, special)] = 10
        input_ids = torch.cat([prompt_ids, response_ids])
        mm_types = (input_ids == image_id).to(torch.int32).unsqueeze(0)
        vision_pos, _ = rope_model.get_rope_index(
            input_ids.unsqueeze(0),
            mm_types,
            image_grid_thw=enc["image_grid_thw"],
            attention_mask=torch.ones(1, input_ids.numel(), dtype=torch.long),
        )
        text_pos = torch.arange(input_ids.numel()).unsqueeze(0)
        rows.append(
            dict(
                prompts=prompt_ids,
                responses=response_ids,
                input_ids=input_ids,
                position_ids=torch.cat([text_pos, vision_pos[:, 0, :]], dim=0),  # (4, L): text + M-RoPE
                response_mask=torch.ones(n_resp, dtype=torch.int64),
                advantages=torch.randn(1, generator=gen).expand(n_resp).contiguous(),
                multi_modal_inputs={"pixel_values": enc["pixel_values"], "image_grid_thw": enc["image_grid_thw"]},
            )
        )
    lengths = [r["input_ids"].numel() for r in rows]
    assert len(set(lengths)) == len(lengths), f"lengths must differ (verl's nested M-RoPE packing): {lengths}"
    return rows


def to_tensordict(rows: list[dict]):
    import torch

    from verl.utils import tensordict_utils as tu

    def nested(key: str):
        return torch.nested.as_nested_tensor([r[key] for r in rows], layout=torch.jagged)

    keys = ["prompts", "responses", "input_ids", "position_ids", "response_mask", "advantages"]
    keys += ["old_log_probs"] if "old_log_probs" in rows[0] else []
    fields = {k: nested(k) for k in keys}
    fields["loss_mask"] = nested("response_mask")
    fields["multi_modal_inputs"] = [r["multi_modal_inputs"] for r in rows]
    return tu.get_tensordict(tensor_dict=fields)


# ----------------------------------------------------------------------------- worker


def actor_configs(model_dir: Path, device: str, max_tokens: int):
    """The recipe's actor/model configs (recipe yaml + what a bare host needs), as verl's worker builds them."""
    from hydra import compose, initialize_config_dir

    from verl.utils.config import omega_conf_to_dataclass

    overrides = [
        "data.train_files=unused",
        "data.val_files=unused",
        f"actor_rollout_ref.model.path={model_dir}",
        "actor_rollout_ref.actor.strategy=fsdp2",
        "+actor_rollout_ref.model.override_config.attn_implementation=sdpa",
        "actor_rollout_ref.model.use_remove_padding=False",
        "actor_rollout_ref.actor.use_torch_compile=False",
        f"actor_rollout_ref.actor.ppo_max_token_len_per_gpu={max_tokens}",
        f"actor_rollout_ref.rollout.log_prob_max_token_len_per_gpu={max_tokens}",
        "actor_rollout_ref.rollout.n=1",
    ]
    if device == "cpu":
        overrides.append("+actor_rollout_ref.actor.fsdp_config.mixed_precision.param_dtype=fp32")
    with initialize_config_dir(config_dir=str(REPO_ROOT / "recipe" / "guardreasoner_vl" / "config"), version_base=None):
        cfg = compose(config_name="guardreasoner_vl_grpo", overrides=overrides)
    model_config = omega_conf_to_dataclass(cfg.actor_rollout_ref.model)
    actor_config = omega_conf_to_dataclass(cfg.actor_rollout_ref.actor)
    actor_config.model_config = model_config
    return cfg, actor_config


def make_worker(actor_config, cfg):
    from verl.workers.config import TrainingWorkerConfig
    from verl.workers.engine_workers import TrainingWorker

    training_config = TrainingWorkerConfig(
        model_type="language_model",
        model_config=actor_config.model_config,
        engine_config=actor_config.engine,
        optimizer_config=actor_config.optim,
        checkpoint_config=actor_config.checkpoint,
    )
    engine = training_config.engine_config
    engine.use_dynamic_bsz = True
    engine.max_token_len_per_gpu = cfg.actor_rollout_ref.actor.ppo_max_token_len_per_gpu
    engine.infer_max_token_len_per_gpu = cfg.actor_rollout_ref.rollout.log_prob_max_token_len_per_gpu
    worker = TrainingWorker(config=training_config)
    worker.reset()
    return worker


def update(worker, rows, loss_fn, *, clip_eps: Optional[float], device: str) -> dict:
    """One ``train_mini_batch`` (all samples in one mini-batch), timed, with peak memory."""
    import torch

    from verl.utils import tensordict_utils as tu

    from recipe.guardreasoner_vl.policy_loss import CLIP_EPS_KEY

    data = to_tensordict(rows)
    tu.assign_non_tensor(
        data,
        mini_batch_size=len(rows),
        global_batch_size=len(rows),
        epochs=1,
        seed=0,
        dataloader_kwargs={"shuffle": False},
        temperature=1.0,
        calculate_entropy=False,
        distillation_use_topk=False,
        distillation_only=False,
    )
    if clip_eps is not None:
        tu.assign_non_tensor_data(data, CLIP_EPS_KEY, clip_eps)
    worker.set_loss_fn(loss_fn)
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    output = worker.train_mini_batch(data)
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    metrics = {k: v for k, v in output["metrics"].items()} if output is not None else {}
    peak = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None
    return {"seconds": seconds, "peak_gib": peak, "metrics": _plain(metrics)}


def _plain(metrics: dict) -> dict:
    out = {}
    for key, value in metrics.items():
        if isinstance(value, list) and value and isinstance(value[0], (int, float)):
            out[key] = float(sum(value) / len(value))
        elif isinstance(value, (int, float)):
            out[key] = float(value)
    return out


def old_log_probs(worker, rows) -> None:
    """Fill each row's ``old_log_probs`` with the current policy's (an on-policy first update)."""
    from verl.utils import tensordict_utils as tu
    from verl.workers.utils.padding import response_from_nested

    data = to_tensordict(rows)
    tu.assign_non_tensor(data, calculate_entropy=False, compute_loss=False, temperature=1.0)
    output = worker.infer_batch(data)
    old = response_from_nested(output["log_probs"], data["response_mask"])
    for row, lp in zip(rows, old.unbind()):
        row["old_log_probs"] = lp.detach().float().cpu()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="tiny model on CPU (seconds): the test mode")
    parser.add_argument("--model-dir", type=Path, default=None, help="use this HF folder instead of building one")
    parser.add_argument("--samples", type=int, default=None, help="sequences in the update (default 8; tiny 4)")
    parser.add_argument("--response-len", type=int, default=None, help="longest response (default 2048; tiny 12)")
    parser.add_argument("--image-side", type=int, default=None, help="image side in pixels (default 448; tiny 56)")
    parser.add_argument("--max-tokens", type=int, default=None, help="token budget per micro-batch (default 6144)")
    parser.add_argument("--repeats", type=int, default=2, help="updates per loss, alternating; the first is warm-up")
    parser.add_argument("--stub-missing", action="store_true", help="stub ray/transfer_queue/... if not installed")
    parser.add_argument("--stub-all", action="store_true", help="stub them even if installed (rehearse a bare host)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    device = "cpu" if args.tiny else "cuda"
    samples = args.samples or (4 if args.tiny else 8)
    response_len = args.response_len or (12 if args.tiny else 2048)
    image_side = args.image_side or (56 if args.tiny else 448)
    max_tokens = args.max_tokens or (4096 if args.tiny else 6144)

    stubbed = install_stubs(everything=args.stub_all) if (args.stub_missing or args.stub_all) else []
    os.environ.setdefault("RANK", "0")
    os.environ.setdefault("WORLD_SIZE", "1")
    os.environ.setdefault("LOCAL_RANK", "0")
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    if "MASTER_PORT" not in os.environ:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            os.environ["MASTER_PORT"] = str(s.getsockname()[1])
    if device == "cpu":
        os.environ["VERL_PLATFORM"] = "cpu"  # the recipe's CPU backend, before verl is imported

    from dataclasses import replace
    from functools import partial

    import torch

    import verl
    from verl.workers.config import PolicyLossConfig
    from verl.workers.utils.losses import ppo_loss

    from recipe.guardreasoner_vl.policy_loss import ScheduledClipLoss
    from demo.tiny_model import build_tiny_model

    torch.manual_seed(args.seed)
    workdir = Path(tempfile.mkdtemp(prefix="gpu_actor_update_"))
    try:
        model_dir = args.model_dir
        t0 = time.perf_counter()
        if model_dir is None:
            tiny = build_tiny_model(workdir / "tiny", seed=args.seed)
            model_dir = tiny if args.tiny else full_size_model(tiny, workdir / "qwen2_5_vl_3b_random", device)
        build_s = time.perf_counter() - t0
        cfg, actor_config = actor_configs(model_dir, device, max_tokens)
        rows = build_batch(model_dir, samples, response_len, image_side, args.seed)
        worker = make_worker(actor_config, cfg)
        params = sum(p.numel() for p in worker.engine.module.parameters())

        vanilla_config = replace(
            actor_config,
            clip_ratio=CLIP_EPS,
            clip_ratio_low=CLIP_EPS,
            clip_ratio_high=CLIP_EPS,
            policy_loss=PolicyLossConfig(loss_mode="vanilla"),
        )
        losses = {
            "guardreasoner_dynamic_clip": (ScheduledClipLoss(actor_config), CLIP_EPS),
            "vanilla": (partial(ppo_loss, config=vanilla_config), None),
        }
        old_log_probs(worker, rows)
        runs: dict[str, list[dict]] = {name: [] for name in losses}
        for _ in range(args.repeats):
            for name, (loss_fn, eps) in losses.items():
                runs[name].append(update(worker, rows, loss_fn, clip_eps=eps, device=device))

        tokens = sum(r["input_ids"].numel() for r in rows)
        report = {
            "device": torch.cuda.get_device_name() if device == "cuda" else platform.processor() or "cpu",
            "model": "tiny random Qwen2.5-VL" if args.tiny else "random Qwen2.5-VL-3B (3B dims)",
            "parameters": params,
            "samples": samples,
            "tokens": tokens,
            "response_len_max": response_len,
            "image_side": image_side,
            "clip_eps": CLIP_EPS,
            "seed": args.seed,
            "model_build_s": build_s,
            "stubbed_modules": stubbed,
            "versions": {"python": platform.python_version(), "torch": torch.__version__, "verl": verl.__version__},
            "results": runs,
        }
        size = f"{params / 1e9:.3f} B" if params >= 1e8 else f"{params / 1e6:.2f} M"
        print(f"{report['model']}: {size} params, {samples} samples, {tokens} tokens, device {report['device']}")
        for name, results in runs.items():
            warm = results[-1]
            peak = f"{warm['peak_gib']:.1f} GiB" if warm["peak_gib"] is not None else "n/a (CPU)"
            clip = warm["metrics"].get("actor/clip_eps", warm["metrics"].get("clip_eps"))
            print(
                f"{name:28s} first {results[0]['seconds']:7.2f} s   warm {warm['seconds']:7.2f} s   peak {peak}"
                f"   pg_loss {warm['metrics'].get('actor/pg_loss', float('nan')):.5f}   clip_eps {clip}"
            )
        if args.json:
            args.json.write_text(json.dumps(report, indent=2))
            print(f"wrote {args.json}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
