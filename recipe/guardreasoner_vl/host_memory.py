"""Host memory a GRPO step holds in verl's TransferQueue: the per-sample bytes and the step's total.

verl 0.9.1's v1 trainer always runs TransferQueue. Every rollout sample (each of the ``rollout.n``
samples of a prompt, separately) is put into its storage units on the host with its token tensors and
the Qwen2.5-VL processor's output for its images: ``pixel_values`` of shape
``(patches, channels x temporal_patch x patch x patch)`` in float32 (``agent_loop_tq.py``,
``_agent_loop_postprocess``). One image at the recipe's default ``max_pixels`` (1280 visual tokens) is
5,120 patches x 1,176 values x 4 bytes = 24.1 MB, and it is stored 16 times per prompt: the images,
not the tokens, decide the host memory of a step. The storage units (``transfer_queue.backend.
SimpleStorage.num_data_storage_units``, 8 by default) are placed round-robin over the nodes, so a node
holds its share of them.

The byte counts here are exact for the tensors verl stores (``benchmarks/bench_host_memory.py``
measures them through verl's own processor and agent-loop code and compares); the step total is an
upper bound that assumes every prompt and response at its maximum length and every image at
``max_pixels``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import pyarrow.parquet as pq

from data_prep.writers import DEFAULT_MAX_PIXELS

__all__ = [
    "IMAGE_PATCH",
    "HostMemoryEstimate",
    "data_image_stats",
    "estimate_step",
    "image_bytes",
    "node_share",
    "sample_bytes",
]

#: Qwen2.5-VL's vision geometry (its processor's defaults): 14 px patches, 2x2 merged into one visual
#: token of 28x28 px, 2 frames per temporal patch (an image is repeated), 3 channels.
IMAGE_PATCH = 14
MERGE = 2
TEMPORAL_PATCH = 2
CHANNELS = 3
#: ``pixel_values`` is float32; token tensors are int64; per-token floats are float32.
FLOAT_BYTES = 4
INT_BYTES = 8
#: int64 tensors of one sample, in units of its sequence length L = prompt + response: input_ids,
#: attention_mask, and position_ids of 4 rows (Qwen-VL's text + 3 M-RoPE rows).
INT_PER_SEQUENCE_TOKEN = 1 + 1 + 4
#: int64 tensors in units of the prompt length (prompts) and of the response length (responses,
#: response_mask, loss_mask).
INT_PER_PROMPT_TOKEN = 1
INT_PER_RESPONSE_TOKEN = 3
#: float32 per response token: rollout log-probs, then what the step adds (old log-probs, reward
#: scores, token-level scores and rewards, advantages, returns).
FLOAT_PER_RESPONSE_TOKEN = 7
#: image_grid_thw: 3 int64 per image.
GRID_BYTES = 3 * INT_BYTES


def image_patches(max_pixels: int) -> int:
    """Largest number of 14 px patches of one image under ``max_pixels`` (whole 28x28 visual tokens)."""
    if max_pixels < (IMAGE_PATCH * MERGE) ** 2:
        raise ValueError(f"max_pixels must be at least {(IMAGE_PATCH * MERGE) ** 2}, got {max_pixels}")
    return (max_pixels // (IMAGE_PATCH * MERGE) ** 2) * MERGE**2


def image_bytes(max_pixels: int) -> int:
    """Host bytes of one image's processor output (``pixel_values`` + ``image_grid_thw``) at ``max_pixels``."""
    values_per_patch = CHANNELS * TEMPORAL_PATCH * IMAGE_PATCH * IMAGE_PATCH
    return image_patches(max_pixels) * values_per_patch * FLOAT_BYTES + GRID_BYTES


def sample_bytes(prompt_tokens: int, response_tokens: int, *, images: float = 0.0, max_pixels: int = 0) -> float:
    """Host bytes of one rollout sample in TransferQueue: token tensors plus ``images`` images.

    ``images`` may be a mean over samples (0.6 = 60 % of the rows carry one image).
    """
    if prompt_tokens < 0 or response_tokens < 0 or images < 0:
        raise ValueError("token counts and images must be non-negative")
    tokens = (
        (prompt_tokens + response_tokens) * INT_PER_SEQUENCE_TOKEN * INT_BYTES
        + prompt_tokens * INT_PER_PROMPT_TOKEN * INT_BYTES
        + response_tokens * (INT_PER_RESPONSE_TOKEN * INT_BYTES + FLOAT_PER_RESPONSE_TOKEN * FLOAT_BYTES)
    )
    return tokens + (images * image_bytes(max_pixels) if images else 0.0)


def node_share(nnodes: int, storage_units: int) -> float:
    """Largest share of the TransferQueue data one node holds (units are placed round-robin over nodes)."""
    if nnodes < 1 or storage_units < 1:
        raise ValueError("nnodes and storage_units must be at least 1")
    return math.ceil(storage_units / nnodes) / storage_units


@dataclass(frozen=True)
class HostMemoryEstimate:
    """One step's TransferQueue payload, upper bound, and the busiest node's share of it."""

    samples: int
    bytes_per_sample: float
    images_per_sample: float
    max_pixels: int
    step_bytes: float
    node_bytes: float
    source: str

    def summary(self) -> str:
        gib = 2**30
        return (
            f"TransferQueue holds up to {self.step_bytes / gib:.1f} GiB per step ({self.samples} samples x"
            f" {self.bytes_per_sample / 2**20:.1f} MiB; {self.images_per_sample:.2f} images per sample at max_pixels"
            f" {self.max_pixels}, {self.source}), {self.node_bytes / gib:.1f} GiB on the busiest node"
        )


def estimate_step(
    cfg: Any,
    *,
    images_per_sample: float,
    max_pixels: int,
    source: str = "given",
) -> HostMemoryEstimate:
    """Upper bound of one GRPO step's TransferQueue payload for a composed config.

    ``images_per_sample`` and ``max_pixels`` describe the RL data (``check_config`` reads them from the
    training parquet when it exists, else assumes one image per sample at build-rl's default).
    """
    from omegaconf import OmegaConf

    def get(key: str, default: Optional[Any] = None) -> Any:
        return OmegaConf.select(cfg, key, default=default)

    samples = int(get("data.train_batch_size")) * int(get("actor_rollout_ref.rollout.n"))
    per_sample = sample_bytes(
        int(get("data.max_prompt_length")),
        int(get("data.max_response_length")),
        images=images_per_sample,
        max_pixels=max_pixels,
    )
    step = samples * per_sample
    units = int(get("transfer_queue.backend.SimpleStorage.num_data_storage_units", 8) or 8)
    share = node_share(int(get("trainer.nnodes", 1)), units)
    return HostMemoryEstimate(
        samples=samples,
        bytes_per_sample=per_sample,
        images_per_sample=images_per_sample,
        max_pixels=max_pixels,
        step_bytes=step,
        node_bytes=step * share,
        source=source,
    )


#: Rows of the training parquet read to learn the images per sample and their max_pixels (only the
#: ``max_pixels`` leaf of the ``images`` column is read, never the image bytes).
SAMPLE_ROWS = 4096


def data_image_stats(train_files: Any) -> tuple[float, int, str]:
    """``(images per sample, largest max_pixels, where it comes from)`` of the RL training data.

    Reads ``images[*].max_pixels`` of the first :data:`SAMPLE_ROWS` rows of the first local training
    file (build-rl stores each image's ``max_pixels`` with it; the image bytes are not read). Without a readable file: one image per
    sample at build-rl's default ``max_pixels``, the worst case of the bundled builders.
    """
    paths = [str(p) for p in (train_files if isinstance(train_files, (list, tuple)) else [train_files]) if p]
    paths = [p for p in paths if "://" not in p]
    try:
        if not paths:
            raise FileNotFoundError("no local training file")
        batch = next(
            pq.ParquetFile(paths[0]).iter_batches(batch_size=SAMPLE_ROWS, columns=["images.list.element.max_pixels"])
        )
    except (OSError, StopIteration, KeyError, ValueError) as err:
        reason = f"assumed: {type(err).__name__} reading the training data" if paths else "assumed: no local data"
        return 1.0, DEFAULT_MAX_PIXELS, reason
    rows = batch.column("images").to_pylist()
    counts = [len(images or []) for images in rows]
    pixels = [int(image.get("max_pixels") or DEFAULT_MAX_PIXELS) for images in rows for image in images or []]
    source = f"from the first {len(rows)} rows of {Path(paths[0]).name}"
    return (sum(counts) / len(counts) if counts else 0.0), (max(pixels) if pixels else DEFAULT_MAX_PIXELS), source
