"""GRPO for GuardReasoner-VL: ``python -m recipe.guardreasoner_vl.main_grpo [hydra overrides]``.

This is verl's ``main_ppo`` with one class swapped. What differs:

- the default config is ``config/guardreasoner_vl_grpo.yaml`` (verl's ``ppo_trainer`` plus the
  paper's hyper-parameters and the ``guardreasoner:`` section); ``--config-name
  guardreasoner_vl_eco_grpo`` selects the Eco preset;
- the config is validated on the driver before Ray starts (:func:`recipe.guardreasoner_vl.check_config.validate`:
  verl's own ``validate_config``, the checks verl makes only at run time, the reward, the ``guardreasoner:``
  section, the model folder, the data files and the packages the config needs on this machine);
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

import logging
from typing import Any

import hydra

logger = logging.getLogger(__name__)

#: The recipe's config folder, relative to this file (Hydra's config_path convention).
CONFIG_PATH = "config"
CONFIG_NAME = "guardreasoner_vl_grpo"


def run(config: Any) -> None:
    """Validate ``config`` (everything ``check-config --this-machine`` checks), then train as ``main_ppo`` does.

    Raises :class:`~recipe.guardreasoner_vl.check_config.ConfigCheckError` (a ``ValueError``) listing
    every problem before Ray starts; warnings (padding, host memory against this node's) are logged.
    """
    import psutil
    from verl.trainer.main_ppo import run_ppo
    from verl.utils.device import auto_set_device

    from recipe.guardreasoner_vl.check_config import validate

    auto_set_device(config)
    report = validate(config, "grpo", this_machine=True, host_memory_gib=psutil.virtual_memory().total / 2**30)
    for warning in report.warnings:
        logger.warning("config: %s", warning)
    logger.info(report.summary())

    from recipe.guardreasoner_vl.trainer import GuardReasonerTaskRunner

    run_ppo(config, task_runner_class=GuardReasonerTaskRunner)


@hydra.main(config_path=CONFIG_PATH, config_name=CONFIG_NAME, version_base=None)
def main(config: Any) -> None:
    run(config)


if __name__ == "__main__":
    main()
