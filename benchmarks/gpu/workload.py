"""What the GPU runs train on: the model and the data, for ``DEVICE=cuda`` and its CPU rehearsal.

One definition per device, so the CPU rehearsal runs exactly the code path of the GPU run with
smaller numbers:

- ``cuda``: a randomly initialised model with Qwen2.5-VL-3B's dimensions (3.755 B parameters, bf16,
  built on the GPU in seconds, with the tiny model's tokenizer and processor), images at 256 visual
  tokens each (about 448 x 448 pixels);
- ``cpu``: the tiny random Qwen2.5-VL (about 0.2 M parameters), images at 4-16 visual tokens.

The data is the bundled sample, written by the project's own writers: the GuardReasoner-VLTrain
look-alike (72 text, image and text-image rows) for GRPO and R-SFT, and two mini benchmarks (a
text prompt set and a text-image set with responses) for GRPO validation. The model is random, so
rewards and F1 mean nothing; the runs measure the machinery.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

DEVICES = ("cuda", "cpu")
#: Validation benchmarks (released file stems): prompt-only text, and text-image with responses (both
#: tasks scored).
VAL_BENCHMARKS = ("ToxicChat", "SPA_VL_Eval")


@dataclass(frozen=True)
class RLData:
    train: Path
    val: Path
    #: The ``data_source`` of each validation benchmark (its display name, e.g. ``SPA-VL-Eval``).
    val_sources: tuple[str, ...]


@dataclass(frozen=True)
class Workload:
    """Sizes of the runs on one device (see the module docstring for why they differ)."""

    device: str
    model: str
    #: Largest visual-token budget per image (``max_pixels`` / 28²).
    image_tokens: int
    #: Smallest one: the processor scales smaller images up to it (the bundled images are small).
    image_min_tokens: int
    #: GRPO: prompts per step, samples per prompt, response budget, validation rows per benchmark.
    prompts_per_step: int
    samples_per_prompt: int
    max_response_tokens: int
    val_rows_per_benchmark: int
    #: R-SFT: rows per step.
    sft_batch: int

    @property
    def image_options(self):
        from data_prep.writers import ImageOptions

        return ImageOptions(max_pixels=self.image_tokens * 28 * 28, min_pixels=self.image_min_tokens * 28 * 28)


WORKLOADS = {
    # The hf rollout generates one request at a time (about 0.1 s per token for a 3B model at batch 1
    # on an H200), so the GRPO batch stays small: 4 prompts x 2 samples x 32 tokens per step.
    "cuda": Workload(
        device="cuda", model="random Qwen2.5-VL-3B (3B dimensions)", image_tokens=256, image_min_tokens=256,
        prompts_per_step=4, samples_per_prompt=2, max_response_tokens=32, val_rows_per_benchmark=2, sft_batch=8,
    ),
    "cpu": Workload(
        device="cpu", model="tiny random Qwen2.5-VL", image_tokens=16, image_min_tokens=4,
        prompts_per_step=4, samples_per_prompt=2, max_response_tokens=16, val_rows_per_benchmark=2, sft_batch=4,
    ),
}


def workload(device: str) -> Workload:
    if device not in WORKLOADS:
        raise ValueError(f"DEVICE must be one of {', '.join(DEVICES)}, got {device!r}")
    return WORKLOADS[device]


def build_model(device: str, out: Path) -> Path:
    """The run's model folder under ``out`` (reused when it is already there); returns its path."""
    from demo.tiny_model import build_tiny_model

    tiny = out / "tiny_model"
    if not (tiny / "config.json").is_file():
        build_tiny_model(tiny, seed=0)
    if device == "cpu":
        return tiny
    full = out / "qwen2_5_vl_3b_random"
    if not (full / "config.json").is_file():
        from benchmarks.gpu_actor_update import full_size_model

        work = out / "qwen2_5_vl_3b_random.incomplete"
        shutil.rmtree(work, ignore_errors=True)
        full_size_model(tiny, work, device)
        work.rename(full)
    return full


def _sample_records():
    from data_prep.readers import read_vltrain
    from demo.sample import VLTRAIN_DIR

    return list(read_vltrain(VLTRAIN_DIR))


def build_rl_data(device: str, out: Path) -> RLData:
    """``train.parquet`` (the sample) and ``val.parquet`` (the first rows of each validation benchmark)."""
    from itertools import islice

    from data_prep.readers import read_benchmark
    from data_prep.writers import write_rl
    from demo.sample import SAMPLE_DIR

    load = workload(device)
    out.mkdir(parents=True, exist_ok=True)
    train, val = out / "train.parquet", out / "val.parquet"
    write_rl(_sample_records(), train, split="train", options=load.image_options)
    val_records = []
    for name in VAL_BENCHMARKS:
        rows = list(islice(read_benchmark(name, SAMPLE_DIR / "benchmarks" / f"{name}.json"), load.val_rows_per_benchmark))
        if len(rows) < load.val_rows_per_benchmark:
            raise ValueError(f"mini benchmark {name} has {len(rows)} rows, the run needs {load.val_rows_per_benchmark}")
        val_records.extend(rows)
    write_rl(val_records, val, split="val", options=load.image_options)
    return RLData(train, val, tuple(dict.fromkeys(record.source for record in val_records)))


def build_sft_data(device: str, out: Path) -> Path:
    """``sft_train.parquet``: the sample's rows with their reasoning targets."""
    from data_prep.writers import write_sft

    out.mkdir(parents=True, exist_ok=True)
    path = out / "sft_train.parquet"
    write_sft(_sample_records(), path, options=workload(device).image_options)
    return path
