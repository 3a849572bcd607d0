"""The GuardReasoner GRPO trainer: verl's v1 trainer plus two narrow hooks, and its task runner.

What differs from verl's stock trainer (everything else, ``fit()`` included, is verl's):

- ``_update_actor``: before delegating, writes the clip ratio ``B_s`` of the current step into the
  actor-update batch (``extra_info``), where :class:`~recipe.guardreasoner_vl.policy_loss.ScheduledClipLoss`
  reads it on the workers (see :mod:`recipe.guardreasoner_vl.policy_loss` for why the value rides in
  the batch). ``s`` is ``self.global_steps``, which ``_load_checkpoint`` restores on resume, so the
  schedule continues at the restored step.
- ``on_init_end``: installs ``ScheduledClipLoss`` on the actor workers once (verl's ``set_loss_fn``).
- ``_val_metrics_update``: adds ``val-core/<data_source>/request_f1`` and ``.../response_f1``
  computed from the reward's confusion counts (:mod:`recipe.guardreasoner_vl.val_metrics`).

These hooks are defined once in :class:`GuardReasonerTrainerMixin` and mixed into whichever v1
trainer ``trainer.v1.trainer_mode`` selects (``sync`` by default; the hooks live in the common base
``PPOTrainer``), by :func:`guardreasoner_trainer_cls`.

How the trainer class is swapped: verl's ``TaskRunnerV1.run`` looks the trainer class up by
``trainer.v1.trainer_mode`` in verl's ``TRAINER_REGISTRY``. A new mode name is not an option (the
trainer compares ``trainer_mode`` with ``"sync"`` in several places to pick its replay buffer and
checkpoint behaviour) and ``register_trainer`` refuses to re-register a name. So
:class:`GuardReasonerTaskRunner` (a subclass of verl's task runner, which runs in its own Ray actor
process for the one run) maps the configured mode to the GuardReasoner subclass for the duration
of verl's unchanged ``run`` and restores the registry afterwards.
"""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Any, Iterator, Optional

import ray

from verl.trainer.main_ppo import TaskRunnerV1
from verl.trainer.ppo.v1 import trainer_base
from verl.trainer.ppo.v1.trainer_base import PPOTrainer

from recipe.guardreasoner_vl.policy_loss import LOSS_MODE, ScheduledClipLoss, stamp_clip_eps
from recipe.guardreasoner_vl.recipe_config import GuardReasonerConfig, load_guardreasoner_config
from recipe.guardreasoner_vl.val_metrics import safety_f1_metrics

__all__ = ["GuardReasonerTaskRunner", "GuardReasonerTrainerMixin", "guardreasoner_trainer_cls"]

logger = logging.getLogger(__name__)
logger.setLevel(os.getenv("VERL_LOGGING_LEVEL", "INFO"))


class GuardReasonerTrainerMixin:
    """Dynamic clip + validation F1 on top of a verl v1 ``PPOTrainer`` (mix in first)."""

    guardreasoner: GuardReasonerConfig

    def __init__(self, config: Any) -> None:
        # Check the recipe section before any worker starts: a bad value fails in seconds.
        self.guardreasoner = load_guardreasoner_config(config)
        super().__init__(config)  # type: ignore[call-arg]

    # ------------------------------------------------------------------ dynamic clip

    @property
    def dynamic_clip_enabled(self) -> bool:
        """Whether the actor's policy loss is the scheduled one (else the trainer is stock)."""
        return self.config.actor_rollout_ref.actor.policy_loss.get("loss_mode", "vanilla") == LOSS_MODE

    def clip_eps(self, step: int) -> float:
        """``B_step`` of the configured schedule (``S`` defaults to the run's total training steps)."""
        return self.guardreasoner.clip_schedule.value(step, self.total_training_steps)

    def on_init_end(self) -> None:
        super().on_init_end()  # type: ignore[misc]
        schedule_total = self.guardreasoner.clip_schedule.total_steps
        if schedule_total is not None and schedule_total < self.total_training_steps:
            raise ValueError(
                f"guardreasoner.clip_schedule.total_steps ({schedule_total}) is below the run's total training "
                f"steps ({self.total_training_steps}); leave it null to use the run's"
            )
        if not self.dynamic_clip_enabled:
            logger.warning(
                "actor.policy_loss.loss_mode is %r, not %s: guardreasoner.clip_schedule is not applied",
                self.config.actor_rollout_ref.actor.policy_loss.get("loss_mode"),
                LOSS_MODE,
            )
            return
        from verl.trainer.distillation import is_distillation_enabled
        from verl.utils.config import omega_conf_to_dataclass

        if is_distillation_enabled(self.config.get("distillation")):
            raise ValueError(f"policy_loss.loss_mode={LOSS_MODE} does not support distillation (its own actor loss)")
        actor_config = omega_conf_to_dataclass(self.config.actor_rollout_ref.actor)
        self.actor_rollout_wg.set_loss_fn(ScheduledClipLoss(actor_config))
        logger.info(
            "dynamic clip: schedule %s, eps0 %s, floor %s, S = %s",
            self.guardreasoner.clip_schedule.name,
            self.guardreasoner.clip_schedule.eps0,
            self.guardreasoner.clip_schedule.floor,
            schedule_total or self.total_training_steps,
        )

    def _update_actor(self, batch: Any, metrics: dict) -> Any:
        if self.dynamic_clip_enabled:
            stamp_clip_eps(batch.extra_info, self.clip_eps(self.global_steps))
        return super()._update_actor(batch, metrics)  # type: ignore[misc]

    # ------------------------------------------------------------------ validation F1

    def _val_metrics_update(
        self,
        data_sources: list,
        sample_uids: list,
        reward_extra_infos_dict: dict,
        sample_turns: list,
        expected_acc_counts: Optional[dict] = None,
    ) -> dict[str, float]:
        metrics = super()._val_metrics_update(  # type: ignore[misc]
            data_sources, sample_uids, reward_extra_infos_dict, sample_turns, expected_acc_counts=expected_acc_counts
        )
        metrics.update(safety_f1_metrics(data_sources, reward_extra_infos_dict))
        return metrics


_TRAINER_CLASSES: dict[type, type] = {}


def guardreasoner_trainer_cls(base: type[PPOTrainer]) -> type[PPOTrainer]:
    """``base`` (a verl v1 trainer class) with :class:`GuardReasonerTrainerMixin` mixed in (cached)."""
    if not (isinstance(base, type) and issubclass(base, PPOTrainer)):
        raise TypeError(f"expected a verl v1 PPOTrainer subclass, got {base!r}")
    if issubclass(base, GuardReasonerTrainerMixin):
        return base
    if base not in _TRAINER_CLASSES:
        _TRAINER_CLASSES[base] = type(
            f"GuardReasoner{base.__name__}",
            (GuardReasonerTrainerMixin, base),
            {"__module__": __name__, "__doc__": f"{base.__name__} with the GuardReasoner hooks."},
        )
    return _TRAINER_CLASSES[base]


@contextlib.contextmanager
def _trainer_for_mode(mode: str, cls: type[PPOTrainer]) -> Iterator[None]:
    registry = trainer_base.TRAINER_REGISTRY
    previous = registry.get(mode)
    registry[mode] = cls
    try:
        yield
    finally:
        if previous is None:
            registry.pop(mode, None)
        else:
            registry[mode] = previous


@ray.remote
class GuardReasonerTaskRunner(TaskRunnerV1.__ray_actor_class__):  # type: ignore[name-defined,misc]
    """verl's ``TaskRunnerV1`` whose trainer is the GuardReasoner subclass of the configured mode."""

    def run(self, config: Any) -> None:
        mode = config.trainer.v1.trainer_mode
        cls = guardreasoner_trainer_cls(trainer_base.get_trainer_cls(mode))
        with _trainer_for_mode(mode, cls):
            super().run(config)
