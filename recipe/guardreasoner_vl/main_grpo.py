"""GRPO for GuardReasoner-VL: ``python -m recipe.guardreasoner_vl.main_grpo [hydra overrides]``.

This is verl's ``main_ppo`` with one class swapped. What differs:

- the default config is ``config/guardreasoner_vl_grpo.yaml`` (verl's ``ppo_trainer`` plus the
  paper's hyper-parameters and the ``guardreasoner:`` section); ``--config-name
  guardreasoner_vl_eco_grpo`` selects the Eco preset;
- the ``guardreasoner:`` section is checked on the driver before Ray starts;
- the task runner is :class:`~recipe.guardreasoner_vl.trainer.GuardReasonerTaskRunner`, whose trainer
  adds the per-step dynamic clip and the validation F1 (see :mod:`recipe.guardreasoner_vl.trainer`).

Everything else (``auto_set_device``, ``validate_config``, ``run_ppo``, Ray start-up, the trainer's
``fit``) is verl's own code, so upstream fixes apply unchanged. Heavy imports (verl, Ray, torch)
happen inside :func:`run`, so ``--help`` and ``--cfg job`` stay fast.

Examples::

    python -m recipe.guardreasoner_vl.main_grpo data.train_files=rl/train.parquet \\
        data.val_files=rl/val.parquet actor_rollout_ref.model.path=/ckpt/r-sft-3b
    python -m recipe.guardreasoner_vl.main_grpo --config-name guardreasoner_vl_eco_grpo ...
"""

from __future__ import annotations

from typing import Any

import hydra

#: The recipe's config folder, relative to this file (Hydra's config_path convention).
CONFIG_PATH = "config"
CONFIG_NAME = "guardreasoner_vl_grpo"


def run(config: Any) -> None:
    """Validate ``config`` as verl's ``main_ppo`` does, check the recipe section, then train."""
    from verl.trainer.main_ppo import run_ppo
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config
    from verl.utils.device import auto_set_device

    from recipe.guardreasoner_vl.recipe_config import load_guardreasoner_config

    auto_set_device(config)
    validate_config(
        config=config,
        use_reference_policy=need_reference_policy(config),
        use_critic=need_critic(config),
    )
    load_guardreasoner_config(config)
    if not config.trainer.use_v1:
        raise ValueError("the GuardReasoner trainer extends verl's v1 trainer: set trainer.use_v1=True")

    from recipe.guardreasoner_vl.trainer import GuardReasonerTaskRunner

    run_ppo(config, task_runner_class=GuardReasonerTaskRunner)


@hydra.main(config_path=CONFIG_PATH, config_name=CONFIG_NAME, version_base=None)
def main(config: Any) -> None:
    run(config)


if __name__ == "__main__":
    main()
