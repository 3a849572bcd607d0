"""Fixes for verl 0.9.1 bugs that break this recipe on every platform, kept in one place.

Each fix names the verl function it replaces, says why, and applies only where the bug is present.
They are applied by the ``verl.plugins`` entry point (:mod:`recipe.guardreasoner_vl.plugin`) in
every verl process, lazily: nothing is imported until verl itself imports the patched module, so
``import verl`` costs the same. Set ``GUARDREASONER_VERL_FIXES=0`` to turn them off.

Because they change verl for every run in the environment, they are guarded twice: they apply only
with the verl and transformers versions they were written and tested for (:data:`WRITTEN_FOR`; any
other version logs a warning saying so and leaves verl untouched, ``GUARDREASONER_VERL_FIXES=force``
applies them anyway), and a fix whose target function no longer has the expected signature is
skipped with a warning.

1. **Text-only micro-batches of Qwen2-VL / Qwen2.5-VL crash under transformers 5.**
   ``verl/models/transformers/qwen2_vl.py::_get_input_embeds`` runs a dummy vision pass on a
   micro-batch without images (so every FSDP rank's vision tower takes part in the step) and calls
   ``.mean()`` on the vision tower's output. Since transformers 5 that output is a
   ``BaseModelOutputWithPooling``, not a tensor, so the actor fails with ``AttributeError: ... has no
   attribute 'mean'`` as soon as a micro-batch holds only text rows. The function's image and video
   branches already unwrap the output with ``unpack_visual_output``; the text-only branch does not.
   GuardReasoner-VLTrain is about half text-only, so real runs hit this. The fix handles the
   text-only case with the output unwrapped and hands every other case to verl's function.
"""

from __future__ import annotations

import importlib.abc
import importlib.metadata
import importlib.util
import inspect
import logging
import os
import sys
from typing import Any, Callable, Mapping, Optional

from packaging.specifiers import SpecifierSet
from packaging.version import Version

logger = logging.getLogger(__name__)

ENV_SWITCH = "GUARDREASONER_VERL_FIXES"
#: The package versions the fixes were written and tested for (the recipe's pins: verl 0.9.1 with
#: its supported transformers range).
WRITTEN_FOR: Mapping[str, str] = {"verl": "==0.9.1", "transformers": ">=5.5.3,<5.11"}
_QWEN2_VL_MODULE = "verl.models.transformers.qwen2_vl"
_FIXED_MARK = "_guardreasoner_fixed"
#: Parameters of verl 0.9.1's ``_get_input_embeds``, in order: the fix replaces exactly this function.
_INPUT_EMBEDS_PARAMS = (
    "model", "input_ids", "attention_mask", "pixel_values", "pixel_values_videos", "image_grid_thw", "video_grid_thw",
)


def version_mismatches(written_for: Optional[Mapping[str, str]] = None) -> list[str]:
    """``"verl 0.10.0 (fixes written for ==0.9.1)"`` for every package outside its range (default: :data:`WRITTEN_FOR`)."""
    problems = []
    for package, spec in (WRITTEN_FOR if written_for is None else written_for).items():
        try:
            installed = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            problems.append(f"{package} not installed (fixes written for {spec})")
            continue
        if Version(installed) not in SpecifierSet(spec):
            problems.append(f"{package} {installed} (fixes written for {spec})")
    return problems


def fix_qwen2_vl_text_only_embeds(module: Any) -> None:
    """Replace ``module._get_input_embeds`` with a version whose text-only branch works (idempotent).

    Skipped, with a warning, when verl's function no longer takes the parameters it was written for.
    """
    original = module._get_input_embeds
    if getattr(original, _FIXED_MARK, False):
        return
    params = tuple(inspect.signature(original).parameters)
    if params != _INPUT_EMBEDS_PARAMS:
        logger.warning(
            "guardreasoner_vl: %s._get_input_embeds%s is not the function the text-only fix replaces %s; "
            "fix not applied", module.__name__, params, _INPUT_EMBEDS_PARAMS,
        )
        return
    import torch
    from verl.utils.transformers_compat import unpack_visual_output

    def _get_input_embeds(
        model: Any,
        input_ids: torch.LongTensor,
        attention_mask: Optional[torch.Tensor] = None,
        pixel_values: Optional[torch.FloatTensor] = None,
        pixel_values_videos: Optional[torch.FloatTensor] = None,
        image_grid_thw: Optional[torch.LongTensor] = None,
        video_grid_thw: Optional[torch.LongTensor] = None,
    ):
        if pixel_values is not None or pixel_values_videos is not None:
            return original(
                model, input_ids, attention_mask, pixel_values, pixel_values_videos, image_grid_thw, video_grid_thw
            )
        inputs_embeds = model.get_input_embeddings()(input_ids)
        # verl's dummy pass, with the vision output unwrapped: a 4x4-patch blank image whose
        # features are added with weight 0, so the vision tower joins the step without changing it.
        vision = model.config.vision_config
        patch_dim = vision.in_channels * vision.temporal_patch_size * vision.patch_size**2
        dummy = torch.zeros((16, patch_dim), dtype=inputs_embeds.dtype, device=inputs_embeds.device)
        grid = torch.tensor([[1, 4, 4]], dtype=torch.long, device=inputs_embeds.device)
        dummy_embeds, _ = unpack_visual_output(model.visual(dummy.type(model.visual.dtype), grid_thw=grid))
        inputs_embeds = inputs_embeds + 0.0 * dummy_embeds.mean()
        if attention_mask is not None:
            attention_mask = attention_mask.to(inputs_embeds.device)
        return inputs_embeds, attention_mask

    setattr(_get_input_embeds, _FIXED_MARK, True)
    _get_input_embeds.__wrapped__ = original  # type: ignore[attr-defined]
    module._get_input_embeds = _get_input_embeds


class _RunAfterImport(importlib.abc.MetaPathFinder):
    """Run ``callback(module)`` right after the module ``name`` is first imported."""

    def __init__(self, name: str, callback: Callable[[Any], None]) -> None:
        self.name, self.callback = name, callback

    def find_spec(self, fullname: str, path: Any, target: Any = None):  # noqa: D102 - importlib protocol
        if fullname != self.name:
            return None
        sys.meta_path.remove(self)  # find the real spec with the other finders, once
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            sys.meta_path.insert(0, self)
        if spec is None or spec.loader is None:
            return spec
        exec_module, callback = spec.loader.exec_module, self.callback

        def exec_then_fix(module: Any) -> None:
            exec_module(module)
            callback(module)

        spec.loader.exec_module = exec_then_fix  # type: ignore[method-assign]
        sys.meta_path.remove(self)
        return spec


def when_imported(name: str, callback: Callable[[Any], None]) -> None:
    """Apply ``callback`` to module ``name`` now if it is loaded, else as soon as it is."""
    if name in sys.modules:
        callback(sys.modules[name])
    else:
        sys.meta_path.insert(0, _RunAfterImport(name, callback))


def apply() -> bool:
    """Install every fix (lazily) unless switched off or the versions differ; returns whether installed.

    Called by the plugin in every verl process.
    """
    switch = os.environ.get(ENV_SWITCH, "1").strip().lower()
    if switch in ("0", "false", "no", "off"):
        logger.info("%s=0: verl fixes not applied", ENV_SWITCH)
        return False
    mismatches = version_mismatches()
    if mismatches and switch != "force":
        logger.warning(
            "guardreasoner_vl: verl fixes not applied: %s. Check whether this verl still has the bugs "
            "(recipe/guardreasoner_vl/verl_fixes.py lists them); %s=force applies the fixes anyway.",
            "; ".join(mismatches), ENV_SWITCH,
        )
        return False
    when_imported(_QWEN2_VL_MODULE, fix_qwen2_vl_text_only_embeds)
    return True
