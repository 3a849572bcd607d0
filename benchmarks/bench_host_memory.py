"""Host bytes one GRPO rollout sample holds in verl's TransferQueue, measured on the CPU, and a step's total.

verl 0.9.1 puts every rollout sample (each of the ``rollout.n`` samples of a prompt) into TransferQueue's
storage units on the host, with the Qwen2.5-VL processor's ``pixel_values`` of its images. This script
builds one sample exactly as verl's agent loop does (``AgentLoopWorker._compute_multi_modal_inputs`` on a
real Qwen2.5-VL processor with the model's image geometry; the image loaded by verl's ``process_image``
from a row's ``{"bytes", "max_pixels", "min_pixels"}``; ``AgentLoopOutput.as_dict`` and verl's
``list_of_dict_to_tensordict`` for the record that ``kv_batch_put`` stores), then counts the bytes of
its tensors, for each ``--max-pixels``. It compares them with the formula of
``recipe/guardreasoner_vl/host_memory.py`` (what the config check uses) and scales to the paper's step:
512 prompts x 16 samples.

Usage::

    python benchmarks/bench_host_memory.py
    python benchmarks/bench_host_memory.py --max-pixels 1003520 501760 --json benchmarks/results/host_memory_cpu.json

Nothing is timed: the figures are byte counts (the pickled record is printed too, as what a transfer
would carry). The tokenizer is the tiny test model's (token ids are int64 whatever the vocabulary).
"""

from __future__ import annotations

import argparse
import io
import json
import pickle
import platform
import sys
import types
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable from a checkout

import torch  # noqa: E402
from PIL import Image  # noqa: E402

from data_prep.writers import DEFAULT_MAX_PIXELS, DEFAULT_MIN_PIXELS  # noqa: E402
from recipe.guardreasoner_vl import host_memory  # noqa: E402

PAPER_PROMPTS, PAPER_N = 512, 16
#: Fields the step adds per response token after the rollout (float32): old log-probs, reward scores,
#: token-level scores and rewards, advantages, returns (host_memory.FLOAT_PER_RESPONSE_TOKEN - 1).
STEP_FLOAT_FIELDS = ("old_log_probs", "rm_scores", "token_level_scores", "token_level_rewards", "advantages", "returns")


def _processor():
    """A Qwen2.5-VL processor with the real model's image geometry (14 px patches, 2x2 merge, 2 frames)."""
    from transformers import Qwen2_5_VLProcessor, Qwen2VLImageProcessor
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    from demo.tiny_model import CHAT_TEMPLATE, build_tokenizer

    return Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessor(),
        tokenizer=build_tokenizer(),
        video_processor=Qwen2VLVideoProcessor(),
        chat_template=CHAT_TEMPLATE,
    )


def _tensor_bytes(value) -> int:
    """Bytes of every tensor in a (nested) TensorDict / dict / list."""
    if isinstance(value, torch.Tensor):
        if value.is_nested:
            return sum(t.numel() * t.element_size() for t in value.unbind())
        return value.numel() * value.element_size()
    if hasattr(value, "items"):
        return sum(_tensor_bytes(v) for _, v in value.items())
    if isinstance(value, (list, tuple)):
        return sum(_tensor_bytes(v) for v in value)
    return 0


def measure(processor, max_pixels: int, *, text_tokens: int, response_tokens: int, side: int = 2240) -> dict:
    """One image-bearing rollout sample at ``max_pixels``: bytes per field, as verl stores it.

    The image is ``side`` x 4/5 ``side`` (5:4, so the default budget of 1280 visual tokens is met exactly:
    1120 x 896 px after verl's resize), larger than any budget here, as a stored image up to 2048 px is.
    """
    from verl.experimental.agent_loop.agent_loop import AgentLoopMetrics, AgentLoopOutput, AgentLoopWorker
    from verl.utils.dataset.vision_utils import process_image
    from verl.utils.tensordict_utils import list_of_dict_to_tensordict

    buffer = io.BytesIO()
    Image.effect_noise((side, side * 4 // 5), 64).convert("RGB").save(buffer, format="PNG")
    image = process_image({"bytes": buffer.getvalue(), "max_pixels": max_pixels, "min_pixels": DEFAULT_MIN_PIXELS})

    tok = processor.tokenizer
    pad, start, end = (tok.convert_tokens_to_ids(t) for t in ("<|image_pad|>", "<|vision_start|>", "<|vision_end|>"))
    grid = processor.image_processor(images=[image], return_tensors="pt")["image_grid_thw"][0]
    visual_tokens = int(grid.prod()) // processor.image_processor.merge_size**2
    filler = tok.encode("x " * text_tokens)[:text_tokens]
    prompt_ids = [*filler, start, *([pad] * visual_tokens), end]
    response_ids = filler[:1] * response_tokens

    output = AgentLoopOutput(
        prompt_ids=prompt_ids,
        response_ids=response_ids,
        response_mask=[1] * response_tokens,
        response_logprobs=[0.0] * response_tokens,
        multi_modal_data={"images": [image]},
        metrics=AgentLoopMetrics(),
    )
    # verl's own code path for the processor output (a worker needs only its processor and tokenizer here)
    worker = types.SimpleNamespace(processor=processor, tokenizer=tok, _get_mm_processor_kwargs=lambda audios: {})
    input_ids = torch.tensor(prompt_ids + response_ids, dtype=torch.int64)
    multi_modal_inputs = AgentLoopWorker._compute_multi_modal_inputs(worker, output, input_ids.unsqueeze(0))
    multi_modal_inputs.pop("mm_token_type_ids", None)  # used for position ids only, then dropped by verl
    field = output.as_dict()
    field.pop("multi_modal_data", None)
    field["loss_mask"] = field["response_mask"]
    field["input_ids"] = input_ids
    field["attention_mask"] = torch.ones_like(input_ids)
    field["position_ids"] = torch.zeros((4, input_ids.numel()), dtype=torch.int64)  # Qwen-VL: text + 3 M-RoPE rows
    field["multi_modal_inputs"] = multi_modal_inputs
    record = list_of_dict_to_tensordict([field])

    by_field = {key: _tensor_bytes(field[key]) for key in field if _tensor_bytes(field[key])}
    by_field["multi_modal_inputs"] = {k: _tensor_bytes(v) for k, v in multi_modal_inputs.items()}
    rollout = _tensor_bytes(field)  # the record holds these tensors (multi_modal_inputs as non-tensor data)
    step_added = len(STEP_FLOAT_FIELDS) * response_tokens * 4
    measured = rollout + step_added
    formula = host_memory.sample_bytes(len(prompt_ids), response_tokens, images=1, max_pixels=max_pixels)
    return {
        "max_pixels": max_pixels,
        "image_size_after_resize": list(image.size),
        "visual_tokens": visual_tokens,
        "prompt_tokens": len(prompt_ids),
        "response_tokens": response_tokens,
        "pixel_values_shape": list(multi_modal_inputs["pixel_values"].shape),
        "pixel_values_dtype": str(multi_modal_inputs["pixel_values"].dtype),
        "bytes_by_field": by_field,
        "rollout_record_bytes": rollout,
        "step_added_bytes": step_added,
        "sample_bytes": measured,
        "pickled_record_bytes": len(pickle.dumps(record)),
        "formula_bytes": formula,
        "formula_over_measured": formula / measured,  # the formula bounds at max_pixels: >= 1
        "image_bound_bytes": host_memory.image_bytes(max_pixels),
    }


def paper_step(per_image_sample: int, text_sample: int) -> dict:
    """GiB per paper step (512 x 16 samples) for a share of image samples."""
    samples = PAPER_PROMPTS * PAPER_N
    return {
        f"{int(share * 100)}pct_images_gib": samples * (share * per_image_sample + (1 - share) * text_sample) / 2**30
        for share in (1.0, 0.5)
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("Usage::")[1].split("Nothing")[0])
    parser.add_argument("--max-pixels", type=int, nargs="+", default=[DEFAULT_MAX_PIXELS, 501760, 200704])
    parser.add_argument("--prompt-text-tokens", type=int, default=1024, help="text tokens of the prompt besides the image")
    parser.add_argument("--response-tokens", type=int, default=3072, help="response tokens (paper max: 3072)")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    processor = _processor()
    rows = []
    for max_pixels in args.max_pixels:
        row = measure(processor, max_pixels, text_tokens=args.prompt_text_tokens, response_tokens=args.response_tokens)
        text_only = host_memory.sample_bytes(3072, args.response_tokens)
        row["paper_step"] = paper_step(row["sample_bytes"], text_only)
        rows.append(row)
        mib = 2**20
        print(
            f"max_pixels {max_pixels:>8} ({row['visual_tokens']:>4} visual tokens, pixel_values {row['pixel_values_shape']}"
            f" {row['pixel_values_dtype']}): {row['sample_bytes'] / mib:6.2f} MiB per sample (pixel_values"
            f" {row['bytes_by_field']['multi_modal_inputs']['pixel_values'] / mib:.2f} MiB, pickled record"
            f" {row['pickled_record_bytes'] / mib:.2f} MiB); formula {row['formula_bytes'] / mib:.2f} MiB"
            f" ({row['formula_over_measured']:.3f}x); paper step 512 x 16: {row['paper_step']['100pct_images_gib']:.0f} GiB"
            f" if every sample has an image, {row['paper_step']['50pct_images_gib']:.0f} GiB at half"
        )
    result = {
        "what": "host bytes per GRPO rollout sample in verl's TransferQueue (tensor payload), one image per sample",
        "prompt_text_tokens": args.prompt_text_tokens,
        "response_tokens": args.response_tokens,
        "text_only_sample_bytes_at_3072_3072": host_memory.sample_bytes(3072, args.response_tokens),
        "rows": rows,
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "transformers": __import__("transformers").__version__, "verl": __import__("verl").__version__},
        "device": "cpu",
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.json.with_suffix(".tmp")
        tmp.write_text(json.dumps(result, indent=2) + "\n")
        tmp.replace(args.json)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
