"""verl's SFT trainer with the released R-SFT's frozen vision tower and projector.

The released R-SFT ran on LLaMA-Factory, whose defaults freeze the vision tower and the multimodal
projector of Qwen2-VL/2.5-VL (``freeze_vision_tower`` and ``freeze_multi_modal_projector``, both true)
and train only the language model. verl 0.9.1's FSDP engine freezes nothing in a full fine-tune (its
``freeze_vision_*`` keys apply to LoRA only, and the actor's ``freeze_vision_tower`` is read nowhere),
so the recipe adds the one step it lacks, at the narrowest point:

- :class:`GuardSFTTrainer` is verl's ``SFTTrainer`` unchanged, except that after it created the engine
  (and before ``_init_engine`` builds the model) it wraps that engine instance's ``_build_module``:
  the Hugging Face model is built by verl as usual, then the chosen parts get ``requires_grad=False``,
  *before* FSDP wraps it and the optimizer is built. FSDP2 keeps each parameter's flag, the frozen
  parameters never get a gradient, so AdamW skips them (no update, no weight decay) and gradient
  clipping ignores them.
- What is frozen is read from the ``guardreasoner:`` section of ``guardreasoner_vl_sft.yaml``
  (:class:`SFTFreezeConfig`); ``guardreasoner.freeze_vision_tower=False`` (and/or
  ``freeze_multi_modal_projector=False``) trains them, verl's stock behaviour.

Qwen2-VL/2.5-VL name the vision tower ``visual`` (``visual.patch_embed``, ``visual.blocks``) and the
projector ``visual.merger``, as LLaMA-Factory's plugin for them does. A vision-language model in
which no such parameter is found is an error, not a silent full fine-tune.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any, Callable

from verl.base_config import BaseConfig
from verl.trainer.sft_trainer import SFTTrainer

__all__ = ["GuardSFTTrainer", "SFTFreezeConfig", "freeze_vision", "load_freeze_config", "vision_parameter_names"]

logger = logging.getLogger(__name__)
logger.setLevel(os.getenv("VERL_LOGGING_LEVEL", "INFO"))

#: The recipe's own section of the SFT config.
SECTION = "guardreasoner"
#: Module of the vision tower in Qwen2-VL/2.5-VL, and its projector (the patch merger) inside it.
VISION_MODULE, PROJECTOR_MODULE = "visual", "merger"


@dataclass
class SFTFreezeConfig(BaseConfig):
    """Which parts of the vision-language model R-SFT keeps frozen (the released run: both).

    Args:
        freeze_vision_tower: keep the vision encoder (``visual`` minus the merger) fixed.
        freeze_multi_modal_projector: keep the projector (``visual.merger``) fixed.
    """

    freeze_vision_tower: bool = True
    freeze_multi_modal_projector: bool = True

    def __post_init__(self) -> None:
        for name in ("freeze_vision_tower", "freeze_multi_modal_projector"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{SECTION}.{name} must be true or false, got {getattr(self, name)!r}")


def load_freeze_config(config: Any) -> SFTFreezeConfig:
    """The ``guardreasoner:`` section of an SFT config (missing section: the defaults, both frozen)."""
    from verl.utils.config import omega_conf_to_dataclass

    section = config.get(SECTION) if hasattr(config, "get") else None
    if section is None:
        return SFTFreezeConfig()
    built = omega_conf_to_dataclass(section)
    if not isinstance(built, SFTFreezeConfig):
        raise ValueError(f"{SECTION}._target_ must build an SFTFreezeConfig, got {type(built).__name__}")
    return built


def vision_parameter_names(module: Any) -> tuple[list[str], list[str]]:
    """``(vision tower, projector)`` parameter names of a Qwen2-VL-style model (empty for a text model)."""
    tower, projector = [], []
    for name, _ in module.named_parameters():
        parts = name.split(".")
        if VISION_MODULE not in parts:
            continue
        below = parts[parts.index(VISION_MODULE) + 1 :]
        (projector if below[:1] == [PROJECTOR_MODULE] else tower).append(name)
    return tower, projector


def freeze_vision(module: Any, settings: SFTFreezeConfig) -> list[str]:
    """Set ``requires_grad=False`` on the parts ``settings`` freezes; returns the frozen names."""
    tower, projector = vision_parameter_names(module)
    names = set((tower if settings.freeze_vision_tower else []) + (projector if settings.freeze_multi_modal_projector else []))
    for name, parameter in module.named_parameters():
        if name in names:
            parameter.requires_grad_(False)
    return sorted(names)


def _freezing_build(build: Callable[[], Any], settings: SFTFreezeConfig, *, is_vlm: bool) -> Callable[[], Any]:
    def build_module() -> Any:
        module = build()
        frozen = freeze_vision(module, settings)
        if is_vlm and not frozen:
            raise ValueError(
                f"{SECTION}: asked to freeze the vision tower/projector, but the model has no '{VISION_MODULE}' "
                f"parameters; set {SECTION}.freeze_vision_tower=False and {SECTION}.freeze_multi_modal_projector=False "
                "to train every parameter"
            )
        total = sum(p.numel() for p in module.parameters())
        fixed = sum(p.numel() for p in module.parameters() if not p.requires_grad)
        logger.info("R-SFT: %d of %d parameters frozen (%d tensors under %s)", fixed, total, len(frozen), VISION_MODULE)
        return module

    return build_module


class GuardSFTTrainer(SFTTrainer):
    """verl's ``SFTTrainer``; the model's vision tower and projector frozen as :class:`SFTFreezeConfig` says."""

    def _build_engine(self) -> None:
        super()._build_engine()
        settings = load_freeze_config(self.config)
        if not (settings.freeze_vision_tower or settings.freeze_multi_modal_projector):
            return
        if int(self.config.model.get("lora_rank", 0) or 0) > 0:
            return  # LoRA trains adapters only: verl's own lora.freeze_vision_* keys apply
        engine_cfg = self.engine_config
        if engine_cfg.strategy == "fsdp" and not engine_cfg.get("use_orig_params", False):
            raise ValueError(
                "freezing the vision tower needs engine.strategy=fsdp2 (or FSDP1 with engine.use_orig_params=True): "
                "FSDP1 flat parameters cannot mix frozen and trained weights"
            )
        is_vlm = getattr(self.engine.model_config.hf_config, "vision_config", None) is not None
        self.engine._build_module = _freezing_build(self.engine._build_module, settings, is_vlm=is_vlm)


def run_sft(config: Any) -> None:
    """verl's ``run_sft`` with :class:`GuardSFTTrainer`."""
    from verl.utils.distributed import destroy_global_process_group, initialize_global_process_group

    initialize_global_process_group()
    trainer = GuardSFTTrainer(config=config)
    trainer.fit()
    destroy_global_process_group()
