"""An opt-in CPU backend for verl 0.9.1: a ``cpu`` platform and an ``hf`` (transformers) rollout.

With it, verl's stock ``python -m verl.trainer.main_ppo`` (v1 sync trainer, Ray, TransferQueue,
agent loop, reward loop, FSDP2 actor) runs end to end on a machine without an accelerator: the
recipe's end-to-end tests and the demo use it, and so can any other verl recipe (see
``docs/cpu_backend.md``).

What importing this package does (it is imported in every verl process by the ``verl.plugins``
entry point, ``recipe/guardreasoner_vl/plugin.py``):

- always, and without changing any behaviour: registers the ``cpu`` platform class in
  ``verl.plugin.platform.PlatformRegistry`` and the ``hf`` rollout in
  ``RolloutReplicaRegistry`` (server side) and ``verl.workers.rollout.base._ROLLOUT_REGISTRY``
  (the in-worker adapter that pushes weights). A registered platform is only used when selected;
  a registered rollout only when ``actor_rollout_ref.rollout.name=hf``.
- only when the CPU platform is selected: applies the few behaviour patches of :mod:`.patches`.

How the backend is switched on: ``VERL_PLATFORM=cpu`` (the one switch), plus the overrides of
:mod:`.overrides`, where ``trainer.device=cpu`` is one of them.

Why an environment variable, and why verl's own ``VERL_PLATFORM`` rather than a new one:

- verl fixes the platform of a process once, at import time, long before Hydra has parsed a
  config (``verl.trainer.constants_ppo`` queries it when ``main_ppo`` is imported), and Ray
  workers never see the driver's command line. So the config value ``trainer.device`` cannot be
  the switch; an environment variable is the only thing every process can read in time.
- ``verl.plugin.platform.get_platform`` already reads ``VERL_PLATFORM`` in every process to
  override auto-detection. Using it means one variable decides both "which platform" and "are
  the patches active": a second, project-specific variable could disagree with it.
- ``trainer.device`` is made consistent with it: when the cpu platform is active a different
  value is rewritten to ``cpu`` with a warning (verl's own rule, "the device follows the
  platform"); when it is not active, ``trainer.device=cpu`` alone changes nothing (verl rewrites it
  to the detected device, as it always did).
- Propagation to Ray workers: with a local Ray cluster (``ray.init`` from the driver, what
  ``main_ppo`` does) every worker inherits the driver's environment. For a cluster started
  beforehand, :data:`.overrides.CPU_OVERRIDES` also puts ``VERL_PLATFORM=cpu`` into
  ``ray_kwargs.ray_init.runtime_env.env_vars``, which ``main_ppo`` passes to ``ray.init`` for
  every actor of the job.
- Never implicit: a host without a GPU keeps verl's stock behaviour (the platform's
  ``is_platform_available`` is always False, so auto-detection never picks it). On a GPU host
  with vLLM nothing changes unless the variable is set.
"""

from __future__ import annotations

import os

from verl.plugin.platform import PlatformRegistry

from .platform import PLATFORM_NAME, CpuPlatform

#: verl's own platform override; ``VERL_PLATFORM=cpu`` turns the backend on.
ENV_VAR = "VERL_PLATFORM"

#: ``actor_rollout_ref.rollout.name`` of the transformers rollout.
ROLLOUT_NAME = "hf"

#: The in-worker adapter class (fully qualified), for ``verl.workers.rollout.base.get_rollout_class``.
ADAPTER_FQN = "recipe.guardreasoner_vl.cpu_backend.rollout.HFServerAdapter"


def is_active() -> bool:
    """True when this process runs on the cpu platform (``VERL_PLATFORM=cpu``)."""
    return os.environ.get(ENV_VAR, "").strip().lower() == PLATFORM_NAME


def _load_hf_replica():
    from .rollout import HFReplica

    return HFReplica


def _register() -> None:
    """Register the platform and the rollout (no behaviour change unless selected)."""
    if PlatformRegistry.get(PLATFORM_NAME) is not CpuPlatform:
        PlatformRegistry.register(platform=PLATFORM_NAME)(CpuPlatform)

    from verl.workers.rollout import base as rollout_base
    from verl.workers.rollout.replica import RolloutReplicaRegistry

    RolloutReplicaRegistry.register(ROLLOUT_NAME, _load_hf_replica)
    # verl 0.9.1 has no register function for the adapter side: the table is a plain dict.
    rollout_base._ROLLOUT_REGISTRY[(ROLLOUT_NAME, "async")] = ADAPTER_FQN


_register()

if is_active():
    from . import patches

    patches.apply()

__all__ = ["ENV_VAR", "PLATFORM_NAME", "ROLLOUT_NAME", "CpuPlatform", "is_active"]
