"""The ``cpu`` platform for verl 0.9.1's platform registry (``verl.plugin.platform``).

verl asks "the platform" for everything device-specific: the torch device module, the collective
backend, the Ray resource to request, RNG seeding, memory figures. Out of the box it knows CUDA,
NPU and ROCm, and on a host without an accelerator it falls back to ``nvidia``, so every process
tries CUDA. This class answers those questions for plain CPU processes:

- device ``cpu``, collective backend ``gloo``;
- a device module (:class:`CpuDeviceModule`) that is ``torch.cpu`` plus what verl calls on
  ``torch.cuda`` and ``torch.cpu`` lacks (``empty_cache``, ``max_memory_allocated``,
  ``mem_get_info``, ``get_rng_state``...). Memory figures are the process's resident set (RSS):
  on a CPU the "device memory" a run uses is host memory, so ``perf/max_memory_allocated_gb`` in
  the trainer's metrics is the worker's peak RSS instead of a crash;
- the Ray resource stays ``GPU``: verl's resource pools and ``_check_resource_available`` look for
  ``GPU``/``NPU`` only, so a CPU run starts Ray with ``num_gpus`` = the number of worker slots
  (``+ray_kwargs.ray_init.num_gpus=1``, see :mod:`.overrides`). Ray then hands each worker a
  "GPU" slot; nothing ever touches CUDA because every device question is answered here.

It is never chosen by auto-detection (``is_platform_available`` is False): only
``VERL_PLATFORM=cpu`` selects it (see the package docstring for why).
"""

from __future__ import annotations

import platform as _host
import resource
import sys
import types
from contextlib import contextmanager
from typing import Any, Optional

import psutil
import torch

from verl.plugin.platform import PlatformBase

#: Name under which the platform is registered; ``VERL_PLATFORM=cpu`` selects it.
PLATFORM_NAME = "cpu"


def _peak_rss_bytes() -> int:
    """Peak resident set size of this process (``ru_maxrss`` is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def _rss_bytes() -> int:
    return psutil.Process().memory_info().rss


class CpuDeviceModule(types.ModuleType):
    """``torch.cpu`` plus the ``torch.cuda`` calls verl makes on ``get_torch_device()``.

    Attribute look-ups that are not defined here fall through to ``torch.cpu`` (``Stream``,
    ``Event``, ``current_stream``, ``synchronize``, ``device_count``, ``set_device``...). Caching
    allocators, IPC and memory fractions do not exist on a CPU: those calls are no-ops.
    """

    def __init__(self) -> None:
        super().__init__("verl_cpu_device")

    def __getattr__(self, name: str) -> Any:
        try:
            return getattr(torch.cpu, name)
        except AttributeError:
            raise AttributeError(
                f"torch.cpu has no attribute {name!r} and the cpu platform does not provide it either"
            ) from None

    # --- availability -------------------------------------------------------------------------
    @staticmethod
    def is_available() -> bool:
        return True

    @staticmethod
    def current_device() -> str:
        # A string, not 0: verl does ``tensor.to(get_device_id())`` and ``.to(0)`` means cuda:0.
        return "cpu"

    @staticmethod
    def get_device_name(device: Any = None) -> str:
        return _host.processor() or "cpu"

    @staticmethod
    def get_device_properties(device: Any = None) -> types.SimpleNamespace:
        return types.SimpleNamespace(name=_host.processor() or "cpu", total_memory=psutil.virtual_memory().total)

    # --- memory (host memory of this process) --------------------------------------------------
    @staticmethod
    def empty_cache() -> None:
        """No caching allocator on CPU: nothing to release."""

    @staticmethod
    def ipc_collect() -> None:
        """No CUDA IPC on CPU."""

    @staticmethod
    def set_per_process_memory_fraction(fraction: float, device: Any = None) -> None:
        """No device memory to cap on CPU."""

    @staticmethod
    def reset_peak_memory_stats(device: Any = None) -> None:
        """``ru_maxrss`` cannot be reset; the peak is the process's lifetime peak."""

    @staticmethod
    def reset_accumulated_memory_stats(device: Any = None) -> None:
        """Nothing accumulated on CPU."""

    @staticmethod
    def memory_allocated(device: Any = None) -> int:
        return _rss_bytes()

    @staticmethod
    def memory_reserved(device: Any = None) -> int:
        return _rss_bytes()

    @staticmethod
    def max_memory_allocated(device: Any = None) -> int:
        return _peak_rss_bytes()

    @staticmethod
    def max_memory_reserved(device: Any = None) -> int:
        return _peak_rss_bytes()

    @staticmethod
    def mem_get_info(device: Any = None) -> tuple[int, int]:
        memory = psutil.virtual_memory()
        return memory.available, memory.total

    # --- RNG -------------------------------------------------------------------------------------
    @staticmethod
    def manual_seed(seed: int) -> None:
        torch.manual_seed(seed)

    @staticmethod
    def manual_seed_all(seed: int) -> None:
        torch.manual_seed(seed)

    @staticmethod
    def get_rng_state(device: Any = None) -> torch.Tensor:
        return torch.get_rng_state()

    @staticmethod
    def set_rng_state(state: torch.Tensor, device: Any = None) -> None:
        torch.set_rng_state(state)


#: One shared instance: verl compares and caches ``get_torch_device()``.
CPU_DEVICE_MODULE = CpuDeviceModule()


class CpuPlatform(PlatformBase):
    """verl platform for CPU-only processes (gloo collectives, host memory)."""

    def __init__(self) -> None:
        # The platform is only ever built when selected; make sure the behaviour patches are in
        # place even if someone selected it with ``set_platform`` instead of ``VERL_PLATFORM``.
        from . import patches

        patches.apply()

    # --- core device management ---------------------------------------------------------------
    @property
    def device_name(self) -> str:
        return "cpu"

    @property
    def vendor_name(self) -> str:
        return "cpu"

    @property
    def device_module(self) -> types.ModuleType:
        return CPU_DEVICE_MODULE

    def is_available(self) -> bool:
        return True

    def is_platform_available(self, use_smi_check: bool = False) -> bool:
        # Never auto-detected: a host without a GPU must keep verl's stock behaviour unless the
        # user selects this platform explicitly with VERL_PLATFORM=cpu.
        return False

    def current_device(self) -> str:  # type: ignore[override]
        return "cpu"

    def device_count(self) -> int:
        return 1

    def set_device(self, device_index: Any) -> None:
        """One device; nothing to select."""

    def synchronize(self, device_index: Optional[int] = None) -> None:
        """CPU kernels are synchronous."""

    # --- RNG ------------------------------------------------------------------------------------
    def manual_seed(self, seed: int) -> None:
        torch.manual_seed(seed)

    def manual_seed_all(self, seed: int) -> None:
        torch.manual_seed(seed)

    # --- memory ---------------------------------------------------------------------------------
    def set_allocator_settings(self, settings: str) -> None:
        """``expandable_segments`` and friends are CUDA caching-allocator settings."""

    def empty_cache(self) -> None:
        """No caching allocator on CPU."""

    # --- properties -----------------------------------------------------------------------------
    def get_device_capability(self, device_index: int = 0) -> tuple[Optional[int], Optional[int]]:
        return None, None

    # --- distributed ----------------------------------------------------------------------------
    def communication_backend_name(self) -> str:
        return "gloo"

    def visible_devices_envvar(self) -> str:
        # Ray hands out the "GPU" slots (see module docstring) and sets this variable; keeping the
        # name consistent with the resource lets verl's worker bootstrap read its slot index.
        return "CUDA_VISIBLE_DEVICES"

    # --- profiling ------------------------------------------------------------------------------
    @contextmanager
    def nvtx_range(self, msg: str):
        yield

    def profiler_start(self) -> None:
        """No device profiler on CPU (use ``global_profiler.tool=torch``)."""

    def profiler_stop(self) -> None:
        """No device profiler on CPU."""

    # --- Ray ------------------------------------------------------------------------------------
    def ray_resource_name(self) -> str:
        return "GPU"

    def ray_resource_options(self, num_gpus: float) -> dict[str, Any]:
        return {"num_gpus": num_gpus}

    def ray_noset_envvars(self) -> list[str]:
        return []

    # --- IPC / runtime --------------------------------------------------------------------------
    def is_ipc_supported(self) -> bool:
        return False

    def cudart(self) -> Any:
        return None
