"""The CPU backend's settings, written once as data for tests, the demo, scripts and other recipes.

Use from Python::

    from recipe.guardreasoner_vl.cpu_backend.overrides import CPU_ENV, CPU_OVERRIDES
    subprocess.run([sys.executable, "-m", "verl.trainer.main_ppo", *CPU_OVERRIDES, *mine],
                   env={**os.environ, **CPU_ENV})

or from a shell (one override per line; any verl recipe, any entry point built on ``main_ppo``)::

    export VERL_PLATFORM=cpu
    mapfile -t CPU < <(python -m recipe.guardreasoner_vl.cpu_backend.overrides)
    python -m verl.trainer.main_ppo "${CPU[@]}" data.train_files=... actor_rollout_ref.model.path=...

Each entry says why it is needed; ``docs/cpu_backend.md`` has the long form.
"""

from __future__ import annotations

import sys

from . import ENV_VAR, PLATFORM_NAME, ROLLOUT_NAME

#: Environment of the launching process. Every Ray worker of a local cluster inherits it.
CPU_ENV: dict[str, str] = {ENV_VAR: PLATFORM_NAME}

#: Hydra overrides for ``verl.trainer.main_ppo`` (``ppo_trainer.yaml``) on a CPU host.
CPU_OVERRIDES: list[str] = [
    # The platform decides the device; this keeps the config saying the same thing.
    "trainer.device=cpu",
    # One worker slot: one FSDP rank (gloo) that also hosts the rollout adapter.
    "trainer.nnodes=1",
    "trainer.n_gpus_per_node=1",
    # verl's resource pools request "GPU" bundles (hard-coded GPU/NPU check); one fake GPU slot.
    "+ray_kwargs.ray_init.num_gpus=1",
    # TransferQueue storage units, controllers, agent-loop and reward workers each hold a Ray CPU:
    # with the real core count (2 here) the run waits forever for resources.
    "ray_kwargs.ray_init.num_cpus=16",
    "transfer_queue.backend.SimpleStorage.num_data_storage_units=1",
    # Workers of a Ray cluster started before the driver do not inherit its environment.
    f"++ray_kwargs.ray_init.runtime_env.env_vars.{ENV_VAR}={PLATFORM_NAME}",
    # FSDP1 refuses CPU parameters with sync_module_states; FSDP2 works (ref follows the actor).
    "actor_rollout_ref.actor.strategy=fsdp2",
    # flash-attention does not exist on CPU; remove-padding needs its varlen kernels.
    "+actor_rollout_ref.model.override_config.attn_implementation=sdpa",
    "actor_rollout_ref.model.use_remove_padding=False",
    # torch.compile of the entropy/log-prob kernels costs minutes of compile on CPU for no gain.
    "actor_rollout_ref.actor.use_torch_compile=False",
    # CPUs have no fast bf16 path; fp32 everywhere keeps rollout and actor log-probs equal.
    "+actor_rollout_ref.actor.fsdp_config.mixed_precision.param_dtype=fp32",
    "+actor_rollout_ref.ref.fsdp_config.mixed_precision.param_dtype=fp32",
    "actor_rollout_ref.rollout.dtype=float32",
    # The transformers rollout of this backend, one replica, no tensor parallelism.
    f"actor_rollout_ref.rollout.name={ROLLOUT_NAME}",
    "actor_rollout_ref.rollout.tensor_model_parallel_size=1",
    # The hf rollout returns per-token log-probs; verl then logs rollout-vs-actor agreement.
    "actor_rollout_ref.rollout.calculate_log_probs=True",
]


def main() -> int:
    """Print the overrides, one per line, for ``mapfile`` in shell scripts."""
    sys.stdout.write("\n".join(CPU_OVERRIDES) + "\n")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
