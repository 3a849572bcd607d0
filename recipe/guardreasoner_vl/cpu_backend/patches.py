"""Every change of verl 0.9.1 behaviour the CPU backend needs, in one place.

Applied only when the ``cpu`` platform is selected (``VERL_PLATFORM=cpu``, see the package
docstring), from the ``verl.plugins`` entry point, i.e. at the end of ``import verl`` and before
any verl module that binds these functions with ``from ... import`` is loaded. Each patch is
idempotent (a marker attribute records that it ran) and says why the platform registry alone
cannot do it. Nothing here edits a verl file on disk.

1. ``verl.utils.distributed.initialize_global_process_group[_ray]`` build the backend string
   ``"cpu:gloo,{device}:{backend}"``; on the cpu platform that is ``"cpu:gloo,cpu:gloo"``, which
   torch rejects (device ``cpu`` given twice). The platform cannot fix it: the string is hard-coded.
2. ``verl.utils.device.auto_set_device`` leaves ``trainer.device`` alone when the detected device
   is ``cpu``; a run that selected the cpu platform but kept the default ``trainer.device=cuda``
   would then ask Ray for CUDA worker groups. verl's rule elsewhere is "the device follows the
   platform" (it rewrites the value with a warning), so the same rule is applied here.
3. FSDP2 CPU offload (``CPUOffloadPolicy(pin_memory=True)``, hard-coded for the reference model in
   ``verl/workers/engine/fsdp/transformer_impl.py``) allocates pinned host memory, which needs an
   accelerator driver. ``torch.distributed.fsdp.CPUOffloadPolicy`` is replaced, in this process
   only, by a subclass that never pins (verl's ``fsdp_utils`` imports the name from there).
4. ``EngineRegistry.get_engine_cls`` looks engines up by device, and verl registers its FSDP
   engines for ``cuda`` and ``npu`` only. The FSDP engines are device-agnostic torch code (every
   device call goes through the platform), so the cpu platform uses the ``cuda`` registration by
   setting verl's own override ``VERL_ENGINE_DEVICE=cuda`` (unless the user set it already).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import sys
from typing import Any, Callable

logger = logging.getLogger(__name__)

_MARK = "__guardreasoner_cpu_backend_patched__"


def _once(target: Any, name: str, make: Callable[[Any], Any]) -> None:
    """Replace ``target.name`` by ``make(original)`` unless that was already done."""
    original = getattr(target, name)
    if getattr(original, _MARK, False):
        return
    replacement = make(original)
    setattr(replacement, _MARK, True)
    setattr(target, name, replacement)


# --- 1. plain gloo process group ----------------------------------------------------------------
def _patch_process_group_backend() -> None:
    import verl.utils.distributed as dist_utils

    def make(original):
        @functools.wraps(original)
        def initialize_global_process_group_ray(timeout_second=None, backend=None):
            # verl's default would be "cpu:gloo,cpu:gloo"; an explicit backend (the checkpoint
            # engine passes "cpu:gloo") is kept.
            return original(timeout_second=timeout_second, backend=backend or "gloo")

        return initialize_global_process_group_ray

    _once(dist_utils, "initialize_global_process_group_ray", make)

    def make_torchrun(original):
        @functools.wraps(original)
        def initialize_global_process_group(timeout_second=36000):
            # Same hard-coded string in the torchrun path (SFT trainer); gloo is all a CPU has.
            from datetime import timedelta

            import torch.distributed

            torch.distributed.init_process_group(
                backend="gloo",
                timeout=timedelta(seconds=timeout_second),
                init_method=os.environ.get("DIST_INIT_METHOD", None),
            )
            return int(os.environ["LOCAL_RANK"]), int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])

        return initialize_global_process_group

    _once(dist_utils, "initialize_global_process_group", make_torchrun)


# --- 2. trainer.device follows the platform ------------------------------------------------------
def _patch_auto_set_device() -> None:
    import verl.utils.device as device_utils

    def make(original):
        @functools.wraps(original)
        def auto_set_device(config) -> None:
            trainer = getattr(config, "trainer", None) if config is not None else None
            if trainer is not None and hasattr(trainer, "device") and trainer.device != "cpu":
                logger.warning(
                    "VERL_PLATFORM=cpu selects the CPU backend but trainer.device=%s; using trainer.device=cpu.",
                    trainer.device,
                )
                trainer.device = "cpu"
            return original(config)

        return auto_set_device

    _once(device_utils, "auto_set_device", make)


# --- 3. FSDP2 offload without pinned memory --------------------------------------------------------
def _patch_cpu_offload_policy() -> None:
    import torch.distributed.fsdp as torch_fsdp

    original = torch_fsdp.CPUOffloadPolicy
    if getattr(original, _MARK, False):
        return

    @dataclasses.dataclass
    class UnpinnedCPUOffloadPolicy(original):  # type: ignore[misc, valid-type]
        """``CPUOffloadPolicy`` that never pins: pinned memory needs an accelerator driver."""

        def __post_init__(self) -> None:
            self.pin_memory = False

    setattr(UnpinnedCPUOffloadPolicy, _MARK, True)
    torch_fsdp.CPUOffloadPolicy = UnpinnedCPUOffloadPolicy
    try:  # older import path, still used as a fallback by verl.utils.fsdp_utils
        import torch.distributed._composable.fsdp as composable_fsdp

        composable_fsdp.CPUOffloadPolicy = UnpinnedCPUOffloadPolicy
    except ImportError:
        pass
    # Modules that bound the name before the plugin ran (not the case in a verl process, where the
    # plugin loads at the end of ``import verl``; possible in a harness that imported them first).
    for module_name in ("verl.utils.fsdp_utils", "verl.workers.engine.fsdp.transformer_impl"):
        module = sys.modules.get(module_name)
        if module is not None and getattr(module, "CPUOffloadPolicy", None) is original:
            module.CPUOffloadPolicy = UnpinnedCPUOffloadPolicy


# --- 4. FSDP engines for device "cpu" ------------------------------------------------------------
def _select_engine_device() -> None:
    # ``EngineRegistry.get_engine_cls`` reads VERL_ENGINE_DEVICE before the platform's device
    # name: verl's own knob for a platform that reuses another device's engines. Registering the
    # FSDP classes for "cpu" instead would import the whole engine package (seconds) in every
    # process at ``import verl``. The variable is inherited by every process this one starts.
    os.environ.setdefault("VERL_ENGINE_DEVICE", "cuda")


_APPLIED = False


def apply() -> None:
    """Apply every patch above (idempotent). Call only when the cpu platform is selected."""
    global _APPLIED
    if _APPLIED:
        return
    _patch_process_group_backend()
    _patch_auto_set_device()
    _patch_cpu_offload_policy()
    _select_engine_device()
    _APPLIED = True
    logger.info("guardreasoner-vl CPU backend: verl patches applied (gloo, trainer.device, unpinned offload, engines)")
