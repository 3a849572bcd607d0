"""The dynamic-clip policy loss and the plumbing that brings each step's clip ratio to the actor workers.

Why plumbing is needed (docs/design.md §4). In verl 0.9.1 a policy loss is called as
``fn(old_log_prob, log_prob, advantages, response_mask, loss_agg_mode, config, rollout_is_weights)``:
no step. ``config`` is the worker's frozen ``ActorConfig``, built once in
``ActorRolloutRefWorker.init_model`` from the yaml; editing the driver's config later changes nothing
on the workers (this is why the authors' dynamic clip never took effect). So the value of
``B_s`` must travel from the driver to the workers every step.

How it travels (option (b) of the design brief: the value rides in the actor-update batch).

1. The driver (:class:`recipe.guardreasoner_vl.trainer.GuardReasonerTrainerMixin`, overriding the
   single hook ``PPOTrainer._update_actor``) computes ``B_s`` from the pure schedule
   (:mod:`recipe.guardreasoner_vl.clip_schedule`) at ``self.global_steps`` and writes it to
   ``batch.extra_info[CLIP_EPS_KEY]``. ``extra_info`` is how verl itself sends per-update knobs
   (``temperature``, ``epochs``, ``seed``): TransferQueue turns it into ``NonTensorData`` of the
   ``TensorDict`` the worker receives, and mini- and micro-batch splitting keep it, so it reaches
   the loss function with every micro-batch.
2. On the workers the loss function is :class:`ScheduledClipLoss` (installed once, at start-up,
   through verl's own ``set_loss_fn``). It reads the value from the micro-batch, derives a copy of
   the actor config whose ``clip_ratio``/``clip_ratio_low``/``clip_ratio_high`` equal it (cached
   per value) and calls verl's unchanged :func:`verl.workers.utils.losses.ppo_loss` with it.
3. ``ppo_loss`` dispatches to the registered ``guardreasoner_dynamic_clip``
   (:func:`compute_policy_loss_dynamic_clip`), which runs verl's own ``vanilla`` clipped objective
   with that config and adds ``actor/clip_eps``: the value the worker really clipped with, read
   from the config it was handed, so the logged curve proves the schedule reached the update.
   It refuses a config that did not come through step 2 (e.g. the loss selected under stock
   ``main_ppo``), instead of silently clipping at the yaml's constant.

Why not option (a), a fresh ``set_loss_fn(partial(ppo_loss, config=...))`` every step: it ties the
clip to "whichever loss was installed last" rather than to the batch being trained (the async
trainers update on batches sampled at other steps), sends a whole ``ActorConfig`` to every worker
every step, and needs a driver-side step hook plus an update hook anyway. With (b) the value is
data, attached to the exact batch it governs, and one ``set_loss_fn`` at start-up suffices.

Resume: ``PPOTrainer._load_checkpoint`` restores ``global_steps`` from ``global_step_<n>`` before
``fit`` runs, and the driver computes ``B_s`` from it, so the schedule continues where it stopped.

``constant`` schedule = stock behaviour: the copied config then equals the stock one (clip 0.2 low
and high) and the loss is verl's ``vanilla`` itself, so loss, gradient and metrics are identical.

Reuse in another verl recipe: register nothing new; in the trainer, stamp the batch with
:func:`stamp_clip_eps` before the actor update and install ``ScheduledClipLoss(actor_config)`` on
the actor workers once; select ``policy_loss.loss_mode=guardreasoner_dynamic_clip``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, MutableMapping, Optional

import torch
from tensordict import TensorDict

from verl.trainer.ppo.core_algos import compute_policy_loss_vanilla, register_policy_loss
from verl.utils import tensordict_utils as tu
from verl.workers.config import ActorConfig
from verl.workers.utils.losses import ppo_loss

__all__ = [
    "CLIP_EPS_KEY",
    "CLIP_EPS_METRIC",
    "LOSS_MODE",
    "ScheduledClipLoss",
    "compute_policy_loss_dynamic_clip",
    "read_clip_eps",
    "scheduled_clip_eps",
    "stamp_clip_eps",
    "with_clip_eps",
]

#: ``actor_rollout_ref.actor.policy_loss.loss_mode`` that selects this loss.
LOSS_MODE = "guardreasoner_dynamic_clip"
#: Key of the clip value in the actor-update batch (``KVBatchMeta.extra_info`` -> ``NonTensorData``).
CLIP_EPS_KEY = "guardreasoner_clip_eps"
#: Metric with the clip value the worker used (verl prefixes nothing: the key already starts with actor/).
CLIP_EPS_METRIC = "actor/clip_eps"
# Attribute set on configs derived by :func:`with_clip_eps` (not a dataclass field: nothing else sees it).
_MARKER = "_guardreasoner_clip_eps"


def _check_eps(eps: Any, where: str) -> float:
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not math.isfinite(eps) or not 0.0 <= eps < 1.0:
        raise ValueError(f"{where}: the clip ratio must be a number in [0, 1), got {eps!r}")
    return float(eps)


def stamp_clip_eps(extra_info: MutableMapping[str, Any], eps: float) -> None:
    """Attach the clip value to an actor-update batch (``KVBatchMeta.extra_info`` or a plain dict)."""
    extra_info[CLIP_EPS_KEY] = _check_eps(eps, "stamp_clip_eps")


def read_clip_eps(data: TensorDict) -> float:
    """The clip value carried by a (micro-)batch; a clear error when the trainer did not send it."""
    eps = tu.get_non_tensor_data(data=data, key=CLIP_EPS_KEY, default=None)
    if eps is None:
        raise RuntimeError(
            f"the actor-update batch carries no {CLIP_EPS_KEY!r}: the dynamic clip needs the GuardReasoner "
            "trainer (python -m recipe.guardreasoner_vl.main_grpo), which puts the clip of the current step "
            "in every actor update"
        )
    return _check_eps(eps, f"batch field {CLIP_EPS_KEY!r}")


def with_clip_eps(config: ActorConfig, eps: float) -> ActorConfig:
    """A copy of the frozen actor config clipping symmetrically at ``eps`` (marked as scheduled).

    ``dataclasses.replace`` re-runs the config's own ``__post_init__`` checks; ``global_batch_info``
    (the dict ``ppo_loss`` fills per micro-batch) is shared with the original, as verl expects.
    """
    eps = _check_eps(eps, "with_clip_eps")
    derived = dataclasses.replace(config, clip_ratio=eps, clip_ratio_low=eps, clip_ratio_high=eps)
    setattr(derived, _MARKER, eps)  # a new attribute, not a field: allowed on a frozen BaseConfig
    return derived


def scheduled_clip_eps(config: Any) -> float:
    """The clip value of a config made by :func:`with_clip_eps`; refuses any other config."""
    eps = getattr(config, _MARKER, None)
    if eps is None:
        raise RuntimeError(
            f"policy_loss.loss_mode={LOSS_MODE} got an actor config without a scheduled clip ratio: the "
            "workers must run ScheduledClipLoss, which the GuardReasoner trainer installs "
            "(python -m recipe.guardreasoner_vl.main_grpo); verl's stock main_ppo would clip at the "
            "yaml's constant instead"
        )
    if not config.clip_ratio_low == config.clip_ratio_high == eps:
        raise RuntimeError(
            f"scheduled clip {eps} but the config clips at low={config.clip_ratio_low}, "
            f"high={config.clip_ratio_high}: the config was modified after with_clip_eps"
        )
    return eps


@register_policy_loss(LOSS_MODE)  # type: ignore[arg-type]
def compute_policy_loss_dynamic_clip(
    old_log_prob: torch.Tensor,
    log_prob: torch.Tensor,
    advantages: torch.Tensor,
    response_mask: torch.Tensor,
    loss_agg_mode: str = "token-mean",
    config: Optional[ActorConfig] = None,
    rollout_is_weights: Optional[torch.Tensor] = None,
) -> tuple[torch.Tensor, dict[str, Any]]:
    """PPO's clipped objective with the step's scheduled clip ratio ``B_s`` (GuardReasoner-VL).

    ::

        r_t = exp(log_prob - old_log_prob)
        L   = agg( max(-A * r_t, -A * clip(r_t, 1 - B_s, 1 + B_s)) )

    verl's ``vanilla`` also applies its dual clip to negative advantages (``min(., -A * clip_ratio_c)``);
    it is not in the paper's objective, and the recipe's preset turns it off (``clip_ratio_c: 1e9``, a
    bound the clamped ratio never reaches).

    The math is verl's ``vanilla`` loss, called unchanged with a config clipping at ``B_s``
    (:func:`with_clip_eps`); re-implementing it would only let the two drift. All tensors are
    ``(batch_size, response_length)``.

    Returns
    -------
    (loss, metrics)
        ``vanilla``'s loss and metrics (``actor/pg_clipfrac``, ``actor/ppo_kl``,
        ``actor/pg_clipfrac_lower``) plus ``actor/clip_eps``, the ratio used.

    NOTE: the paper's symmetric clip: low = high = ``B_s``; ``clip_ratio_high`` overrides
    (DAPO's clip-higher) are replaced by the schedule.
    """
    eps = scheduled_clip_eps(config)
    pg_loss, metrics = compute_policy_loss_vanilla(
        old_log_prob=old_log_prob,
        log_prob=log_prob,
        advantages=advantages,
        response_mask=response_mask,
        loss_agg_mode=loss_agg_mode,
        config=config,
        rollout_is_weights=rollout_is_weights,
    )
    metrics[CLIP_EPS_METRIC] = eps
    return pg_loss, metrics


class ScheduledClipLoss:
    """Worker-side loss: verl's ``ppo_loss`` with the clip value carried by each micro-batch.

    Same call signature as ``functools.partial(ppo_loss, config=...)``, which verl's workers install
    by default, so it goes through ``set_loss_fn`` unchanged (it is pickled to the workers once).
    """

    def __init__(self, config: ActorConfig) -> None:
        if config.policy_loss.get("loss_mode", "vanilla") != LOSS_MODE:
            raise ValueError(
                f"ScheduledClipLoss needs actor.policy_loss.loss_mode={LOSS_MODE}, "
                f"got {config.policy_loss.get('loss_mode')!r}"
            )
        self.config = config
        self._cached: Optional[tuple[float, ActorConfig]] = None

    def config_for(self, eps: float) -> ActorConfig:
        """The actor config clipping at ``eps`` (one copy per distinct value: one per step)."""
        if self._cached is None or self._cached[0] != eps:
            self._cached = (eps, with_clip_eps(self.config, eps))
        return self._cached[1]

    def __call__(self, model_output: Any, data: TensorDict, dp_group: Any = None) -> tuple[torch.Tensor, dict]:
        config = self.config_for(read_clip_eps(data))
        return ppo_loss(config=config, model_output=model_output, data=data, dp_group=dp_group)

    def __getstate__(self) -> dict[str, Any]:
        return {"config": self.config, "_cached": None}
