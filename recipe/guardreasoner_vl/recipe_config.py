"""Typed settings of the recipe: the top-level ``guardreasoner:`` section of the GRPO config.

verl rejects unknown keys under ``actor_rollout_ref.actor.*`` and ``algorithm.*`` (their dataclasses
have fixed fields), so the recipe's own settings live in a section of their own, built like verl's
components: each mapping names its dataclass in ``_target_`` and ``__post_init__`` rejects bad values
at start-up (before Ray spins up workers) with the field's name, instead of minutes later inside a
worker. A misspelt key fails too: Hydra's ``instantiate`` passes it to the dataclass constructor.

::

    guardreasoner:
      _target_: recipe.guardreasoner_vl.recipe_config.GuardReasonerConfig
      clip_schedule: {_target_: ...ClipScheduleConfig, name: product, eps0: 0.2, floor: 0.0, total_steps: null}
      reward: {_target_: ...RewardOptionsConfig, beta: 1.0, length_norm: 3072, length_unit: chars,
               eps: 0.0208333, require_think: null, variant: paper}

The reward options reach the reward function through interpolation in the yaml
(``reward.custom_reward_function.reward_kwargs.beta: ${guardreasoner.reward.beta}``), so they are
written once and checked here by the reward function itself.
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
from rewards import guardreasoner_vl as reward_fn

__all__ = ["ClipScheduleConfig", "GuardReasonerConfig", "RewardOptionsConfig", "load_guardreasoner_config"]

#: The config section name.
SECTION = "guardreasoner"

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
        floor: lower bound on ``B_s``, in [0, eps0] (paper: 0).
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
class RewardOptionsConfig(BaseConfig):
    """Options of :func:`rewards.guardreasoner_vl.compute_score` (docs/reward.md has their meaning).

    Args:
        beta: length cap (paper 1.0; Eco 1/6).
        length_norm: l_norm = length / length_norm (released code: 3072).
        length_unit: ``chars`` (released code) or ``tokens`` (needs the token-length reward manager).
        eps: floor on l_norm, so an empty output never divides by zero.
        require_think: whether the format gate needs the think block; null = the variant's default.
        variant: ``paper`` or ``released`` (ablation).
    """

    beta: float = reward_fn.BETA
    length_norm: float = reward_fn.LENGTH_NORM
    length_unit: str = "chars"
    eps: float = reward_fn.EPS
    require_think: Optional[bool] = None
    variant: str = "paper"

    def __post_init__(self) -> None:
        # Validate by calling the reward itself on a dummy sample: one source of truth for the rules.
        tokens = {"response_length_tokens": 0} if self.length_unit == "tokens" else {}
        try:
            reward_fn.compute_score(
                "config-check", "", "Request: harmful\nResponse: None", None, **self.as_kwargs(), **tokens
            )
        except (TypeError, ValueError) as err:
            raise ValueError(f"{SECTION}.reward: {err}") from None

    def as_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of ``compute_score`` (what ``reward_kwargs`` must hold)."""
        return {
            "beta": self.beta,
            "length_norm": self.length_norm,
            "length_unit": self.length_unit,
            "eps": self.eps,
            "require_think": self.require_think,
            "variant": self.variant,
        }


@dataclass
class GuardReasonerConfig(BaseConfig):
    """The ``guardreasoner:`` section: recipe settings verl's own sections cannot hold."""

    clip_schedule: ClipScheduleConfig = field(default_factory=ClipScheduleConfig)
    reward: RewardOptionsConfig = field(default_factory=RewardOptionsConfig)


def load_guardreasoner_config(config: Any) -> GuardReasonerConfig:
    """Build and check the section from a full (Hydra) config; a missing section is an error.

    Also checks that the paths of :data:`REQUIRED_KEYS` are set, and that ``reward.custom_reward_function.reward_kwargs`` agrees with the section when the
    recipe's reward is configured (an override of one and not the other would otherwise train with
    a reward other than the logged config says).
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

    fn_cfg = OmegaConf.select(config, "reward.custom_reward_function") or {}
    if str(fn_cfg.get("path") or "").endswith("rewards.guardreasoner_vl"):
        given = dict(fn_cfg.get("reward_kwargs") or {})
        expected = recipe_cfg.reward.as_kwargs()
        differing = sorted(k for k in expected if k in given and given[k] != expected[k])
        missing = sorted(k for k in expected if k not in given)
        if differing or missing:
            raise ValueError(
                "reward.custom_reward_function.reward_kwargs disagrees with guardreasoner.reward "
                f"(differing: {differing}, missing: {missing}); set the options under guardreasoner.reward, "
                "reward_kwargs interpolates them"
            )
    return recipe_cfg
