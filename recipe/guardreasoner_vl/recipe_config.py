"""Typed settings of the recipe: the top-level ``guardreasoner:`` section of the GRPO config.

verl rejects unknown keys under ``actor_rollout_ref.actor.*`` and ``algorithm.*`` (their dataclasses
have fixed fields), so the recipe's own settings live in a section of their own, built like verl's
components: each mapping names its dataclass in ``_target_`` and ``__post_init__`` rejects bad values
at start-up (before Ray spins up workers) with the field's name, instead of minutes later inside a
worker. A misspelt key fails too: Hydra's ``instantiate`` passes it to the dataclass constructor.

::

    guardreasoner:
      _target_: recipe.guardreasoner_vl.recipe_config.GuardReasonerConfig
      clip_schedule: {_target_: ...ClipScheduleConfig, name: product, eps0: 0.2, floor: 0.01, total_steps: null}

The reward's options have one home, the place verl reads them from:
``reward.custom_reward_function.reward_kwargs``. :func:`load_guardreasoner_config` checks them at
start-up with the reward's own option check (:func:`rewards.guardreasoner_vl.check_options`), so a
misspelt or bad option fails before Ray starts, naming the key, and no second copy can disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from verl.base_config import BaseConfig

from recipe.guardreasoner_vl.clip_schedule import (
    DEFAULT_EPS0,
    DEFAULT_FLOOR,
    get_clip_schedule,
    validate_schedule_params,
)
from recipe.guardreasoner_vl.reward_manager import NAME as TOKEN_LENGTH_MANAGER
from rewards import guardreasoner_vl as reward_fn

__all__ = ["ClipScheduleConfig", "GuardReasonerConfig", "check_reward_kwargs", "load_guardreasoner_config"]

#: The config section name.
SECTION = "guardreasoner"

#: The recipe's reward module (``reward.custom_reward_function.path: pkg://rewards.guardreasoner_vl``).
REWARD_MODULE = reward_fn.__name__

#: Settings the recipe yaml leaves null and a run must set (a ``???`` would not survive the merge over
#: verl's defaults, which hold example paths).
REQUIRED_KEYS = ("data.train_files", "data.val_files", "actor_rollout_ref.model.path")


@dataclass
class ClipScheduleConfig(BaseConfig):
    """The dynamic clip ratio ``B_s`` (docs/design.md §4).

    Args:
        name: a schedule of :mod:`recipe.guardreasoner_vl.clip_schedule` (product, linear, cosine,
            constant); ``product`` is the paper's, ``constant`` is stock GRPO.
        eps0: the initial clip ratio, in (0, 1) (paper: 0.2).
        floor: lower bound on ``B_s``, in [0, eps0] (default 0.01, so the last step is a real PPO
            step; 0 = the paper's formula, which reaches 0 at the last step).
        total_steps: ``S`` of the schedule; null = the trainer's total training steps.
    """

    name: str = "product"
    eps0: float = DEFAULT_EPS0
    floor: float = DEFAULT_FLOOR
    total_steps: Optional[int] = None

    def __post_init__(self) -> None:
        try:
            get_clip_schedule(self.name)
            validate_schedule_params(total_steps=self.total_steps, eps0=self.eps0, floor=self.floor)
        except ValueError as err:
            raise ValueError(f"{SECTION}.clip_schedule: {err}") from None

    def value(self, step: int, trainer_total_steps: int) -> float:
        """``B_step``, with ``S`` = ``total_steps`` or else the trainer's total training steps."""
        total = self.total_steps if self.total_steps is not None else trainer_total_steps
        return get_clip_schedule(self.name)(step, total, eps0=self.eps0, floor=self.floor)


@dataclass
class GuardReasonerConfig(BaseConfig):
    """The ``guardreasoner:`` section: recipe settings verl's own sections cannot hold."""

    clip_schedule: ClipScheduleConfig = field(default_factory=ClipScheduleConfig)


def check_reward_kwargs(config: Any) -> None:
    """Check ``reward.custom_reward_function.reward_kwargs`` when the recipe's reward is configured.

    Uses the reward's own option check, so the rules live in one place; errors name the config key.
    ``length_unit: tokens`` also needs the reward manager that passes token counts (else every reward
    call would fail, minutes into the run).
    """
    from omegaconf import OmegaConf

    fn_cfg = OmegaConf.select(config, "reward.custom_reward_function") or {}
    if not str(fn_cfg.get("path") or "").endswith(REWARD_MODULE):
        return  # another reward: its options are its own business
    kwargs = OmegaConf.to_container(fn_cfg.get("reward_kwargs") or OmegaConf.create({}), resolve=True)
    try:
        reward_fn.check_options(**kwargs)
    except (TypeError, ValueError) as err:
        raise ValueError(f"reward.custom_reward_function.reward_kwargs: {err}") from None
    manager = OmegaConf.select(config, "reward.reward_manager.name", default=None)
    if kwargs.get("length_unit") == "tokens" and manager != TOKEN_LENGTH_MANAGER:
        raise ValueError(
            "reward.custom_reward_function.reward_kwargs.length_unit=tokens needs "
            f"reward.reward_manager.name={TOKEN_LENGTH_MANAGER} (got {manager!r}): only it passes the token count"
        )


def load_guardreasoner_config(config: Any) -> GuardReasonerConfig:
    """Build and check the section from a full (Hydra) config; a missing section is an error.

    Also checks that the paths of :data:`REQUIRED_KEYS` are set and the reward options
    (:func:`check_reward_kwargs`).
    """
    from omegaconf import OmegaConf

    from verl.utils.config import omega_conf_to_dataclass

    section = config.get(SECTION) if hasattr(config, "get") else None
    if section is None:
        raise ValueError(
            f"the config has no '{SECTION}' section: use the recipe config "
            "(--config-name guardreasoner_vl_grpo) or add one (docs/recipe.md)"
        )
    unset = [key for key in REQUIRED_KEYS if OmegaConf.select(config, key, default=None) in (None, "")]
    if unset:
        raise ValueError(f"set {', '.join(unset)} (e.g. {unset[0]}=...): the recipe has no default for them")
    recipe_cfg = omega_conf_to_dataclass(section)
    if not isinstance(recipe_cfg, GuardReasonerConfig):
        raise ValueError(f"{SECTION}._target_ must build a GuardReasonerConfig, got {type(recipe_cfg).__name__}")
    check_reward_kwargs(config)
    return recipe_cfg
