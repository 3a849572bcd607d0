"""Turn a verl FSDP checkpoint into a Hugging Face model folder (R-SFT -> GRPO, GRPO -> evaluation).

verl's SFT trainer saves sharded FSDP state (``global_step_N/model_world_size_W_rank_R.pt``) plus a
``huggingface/`` folder holding only the config, tokenizer and processor (unless ``hf_model`` is in
``checkpoint.save_contents``, which writes full weights at every save). The PPO trainer does the same
under ``global_step_N/actor/``. The 0.9.1 way to get a loadable model from any such checkpoint is
``verl.model_merger`` (FSDP backend): it merges the shards and saves weights, processor and tokenizer.
This module picks the checkpoint (the step in ``latest_checkpointed_iteration.txt`` unless told
otherwise), runs the merger into ``<out>.incomplete``, checks the result is a complete VLM folder
(config, weights, a processor with image processor and tokenizer) and renames it to ``<out>``, so a
crash never leaves a folder that looks finished. The command is ``guardreasoner-vl export-hf``.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Optional

#: verl's tracker file in ``trainer.default_local_dir`` (``verl.utils.checkpoint.checkpoint_manager``).
TRACKER_FILE = "latest_checkpointed_iteration.txt"
#: Provenance written next to the weights: which checkpoint this folder came from.
SOURCE_FILE = "guardreasoner_export_source.json"


def resolve_checkpoint(checkpoint_dir: Path, step: Optional[int] = None, component: str = "") -> Path:
    """The folder holding the FSDP shards to export: ``global_step_N[/component]``.

    ``checkpoint_dir`` is either ``trainer.default_local_dir`` (then ``step``, or the tracker's latest
    step, picks the folder) or a ``global_step_N`` folder itself. ``component`` is the sub-folder of
    a PPO checkpoint (``actor``); the SFT trainer saves at the top of the step folder (``""``).
    """
    checkpoint_dir = Path(checkpoint_dir)
    if re.fullmatch(r"global_step_\d+", checkpoint_dir.name):
        if step is not None and checkpoint_dir.name != f"global_step_{step}":
            raise ValueError(f"--step {step} contradicts the checkpoint folder {checkpoint_dir}")
        chosen = checkpoint_dir
    else:
        if step is None:
            tracker = checkpoint_dir / TRACKER_FILE
            if not tracker.is_file():
                raise FileNotFoundError(
                    f"{tracker} not found: is {checkpoint_dir} the run's trainer.default_local_dir, and did it save?"
                )
            text = tracker.read_text().strip()
            if not text.isdigit():
                raise ValueError(f"{tracker} holds {text!r}, not a step number")
            step = int(text)
        chosen = checkpoint_dir / f"global_step_{step}"
    chosen = chosen / component if component else chosen
    if not chosen.is_dir():
        raise FileNotFoundError(f"checkpoint folder {chosen} does not exist")
    for needed in ("fsdp_config.json", "huggingface"):
        if not (chosen / needed).exists():
            raise FileNotFoundError(f"{chosen} is not a verl FSDP checkpoint: {needed} is missing")
    return chosen


def check_hf_folder(folder: Path) -> None:
    """Raise unless ``folder`` is a complete HF VLM folder: config and weights (verl's own check), and a
    processor with an image processor and a tokenizer that load (file names differ across transformers
    versions, so the check loads them rather than looking for files)."""
    from transformers import AutoProcessor
    from verl.model_merger.output_validation import validate_hf_model_output

    validate_hf_model_output(folder)
    try:
        processor = AutoProcessor.from_pretrained(folder)
    except (OSError, ValueError) as err:
        raise FileNotFoundError(f"{folder}: the processor does not load ({err}); GRPO needs it for images") from err
    if getattr(processor, "image_processor", None) is None or getattr(processor, "tokenizer", None) is None:
        raise ValueError(f"{folder}: {type(processor).__name__} has no image processor or tokenizer")


def export_checkpoint(
    checkpoint_dir: Path, out: Path, *, step: Optional[int] = None, component: str = "", overwrite: bool = False
) -> Path:
    """Merge the chosen checkpoint (see :func:`resolve_checkpoint`) into a HF folder at ``out``, atomically."""
    from verl.model_merger.base_model_merger import ModelMergerConfig
    from verl.model_merger.fsdp_model_merger import FSDPModelMerger

    source = resolve_checkpoint(checkpoint_dir, step, component)
    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists; pass --overwrite to replace it")
    staging = out.with_name(out.name + ".incomplete")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)

    config = ModelMergerConfig(
        operation="merge",
        backend="fsdp",
        local_dir=str(source),
        target_dir=str(staging),
        hf_model_config_path=str(source / "huggingface"),
    )
    try:
        merger = FSDPModelMerger(config)
        merger.merge_and_save()
        merger.cleanup()
        check_hf_folder(staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    (staging / SOURCE_FILE).write_text(json.dumps({"checkpoint": str(source.resolve())}, indent=2) + "\n")
    if out.exists():
        shutil.rmtree(out)
    staging.rename(out)
    return out
