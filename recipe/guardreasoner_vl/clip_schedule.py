"""Dynamic clip-ratio schedules for GRPO (GuardReasoner-VL, docs/design.md §4), and the ``clip-schedule`` command.

The paper shrinks PPO's clip range as training goes on, so late updates stay close to the policy
that produced the rollouts::

    product:   B_s = eps0 * prod_{i=1..s} (S - i) / S        (the paper; B_S = 0)
    linear:    B_s = eps0 * (1 - s / S)                      (B_S = 0)
    cosine:    B_s = eps0 * (1 + cos(pi * s / S)) / 2        (B_S = 0)
    constant:  B_s = eps0                                    (stock GRPO)

and every schedule returns ``max(floor, B_s)``. ``s`` is the 1-based training step (verl's
``global_steps`` during the actor update) and ``S`` the total number of training steps.

Why a floor by default (:data:`DEFAULT_FLOOR` = 0.01). The decaying schedules reach exactly 0 at
``s = S``, and PPO's clipped objective ``max(-A r, -A clip(r, 1 - B, 1 + B))`` then degenerates: for
the on-policy tokens (``r = 1``) ``clamp`` has no gradient at its bound and ``maximum`` splits the tie,
so those tokens get half their gradient, and every token that moved at all is clipped. With the floor
the last update is a real PPO step (full gradient at ``r = 1``, a band of +-1 % around it).
``floor=0`` reproduces the paper's formula exactly.

Each schedule is a pure function ``(step, total_steps, *, eps0=0.2, floor=0.01) -> float`` registered
by name, like verl's ``register_policy_loss``: :func:`get_clip_schedule` raises ``ValueError``
listing the known names. This module imports nothing heavy (the CLI lists values without torch).

Command line::

    guardreasoner-vl clip-schedule --total-steps 10
    guardreasoner-vl clip-schedule --total-steps 10 --floor 0
    guardreasoner-vl clip-schedule --total-steps 100 --schedule cosine --eps0 0.2 --floor 0.02
"""

from __future__ import annotations

import math
from typing import Callable, Protocol

__all__ = [
    "CLIP_SCHEDULE_REGISTRY",
    "ClipSchedule",
    "DEFAULT_EPS0",
    "DEFAULT_FLOOR",
    "clip_values",
    "get_clip_schedule",
    "register_clip_schedule",
    "validate_schedule_params",
]

#: The paper's initial clip ratio (also verl's default ``actor.clip_ratio``).
DEFAULT_EPS0 = 0.2
#: Lower bound on the clip ratio, so the last step stays a real PPO step (see the module docstring);
#: 0 reproduces the paper's formula, which reaches 0 at ``s = S``.
DEFAULT_FLOOR = 0.01


class ClipSchedule(Protocol):
    def __call__(self, step: int, total_steps: int, *, eps0: float = ..., floor: float = ...) -> float: ...


CLIP_SCHEDULE_REGISTRY: dict[str, ClipSchedule] = {}


def register_clip_schedule(name: str) -> Callable[[ClipSchedule], ClipSchedule]:
    """Register ``func`` under ``name``; the wrapper validates the inputs and applies the floor once,
    so each schedule body is only its formula."""

    def decorator(func: Callable[[int, int, float], float]) -> ClipSchedule:
        def schedule(step: int, total_steps: int, *, eps0: float = DEFAULT_EPS0, floor: float = DEFAULT_FLOOR) -> float:
            validate_schedule_params(step=step, total_steps=total_steps, eps0=eps0, floor=floor)
            return max(float(floor), float(func(int(step), int(total_steps), float(eps0))))

        schedule.__name__ = func.__name__
        schedule.__qualname__ = func.__qualname__
        schedule.__doc__ = func.__doc__
        schedule.__wrapped__ = func  # type: ignore[attr-defined]
        if name in CLIP_SCHEDULE_REGISTRY:
            raise ValueError(f"clip schedule {name!r} is already registered")
        CLIP_SCHEDULE_REGISTRY[name] = schedule
        return schedule

    return decorator


def get_clip_schedule(name: str) -> ClipSchedule:
    """The schedule registered as ``name``; ``ValueError`` lists the known names otherwise."""
    try:
        return CLIP_SCHEDULE_REGISTRY[name]
    except (KeyError, TypeError):
        known = ", ".join(sorted(CLIP_SCHEDULE_REGISTRY))
        raise ValueError(f"unknown clip schedule {name!r}; known schedules: {known}") from None


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def validate_schedule_params(
    *, step: int | None = None, total_steps: int | None = None, eps0: float = DEFAULT_EPS0, floor: float = DEFAULT_FLOOR
) -> None:
    """Reject inputs that would give a meaningless clip range, naming the argument.

    ``eps0`` must lie in (0, 1): PPO clips the ratio to ``[1 - eps, 1 + eps]`` and ``eps >= 1`` makes
    the lower bound non-positive. ``floor`` must lie in ``[0, eps0]``. ``step`` runs from 1 to
    ``total_steps`` (verl counts training steps from 1). ``None`` skips the step checks (config
    validation before the total is known).
    """
    if not _is_real(eps0) or not 0.0 < eps0 < 1.0:
        raise ValueError(f"eps0 must be a number in (0, 1), got {eps0!r}")
    if not _is_real(floor) or not 0.0 <= floor <= eps0:
        raise ValueError(f"floor must be a number in [0, eps0={eps0}], got {floor!r}")
    if total_steps is not None and (not _is_int(total_steps) or total_steps < 1):
        raise ValueError(f"total_steps must be an integer >= 1, got {total_steps!r}")
    if step is not None:
        if not _is_int(step):
            raise ValueError(f"step must be an integer, got {step!r}")
        if total_steps is not None and not 1 <= step <= total_steps:
            raise ValueError(f"step must be in [1, total_steps={total_steps}], got {step}")


@register_clip_schedule("product")
def product_schedule(step: int, total_steps: int, eps0: float) -> float:
    """The paper's schedule: ``eps0 * prod_{i=1..s} (S - i) / S``; falls fast, 0 at ``s = S``."""
    value = eps0
    for i in range(1, step + 1):
        value *= (total_steps - i) / total_steps
    return value


@register_clip_schedule("linear")
def linear_schedule(step: int, total_steps: int, eps0: float) -> float:
    """``eps0 * (1 - s / S)``: a straight line to 0 at ``s = S``."""
    return eps0 * (1.0 - step / total_steps)


@register_clip_schedule("cosine")
def cosine_schedule(step: int, total_steps: int, eps0: float) -> float:
    """``eps0 * (1 + cos(pi * s / S)) / 2``: flat at first, 0 at ``s = S``."""
    return eps0 * 0.5 * (1.0 + math.cos(math.pi * step / total_steps))


@register_clip_schedule("constant")
def constant_schedule(step: int, total_steps: int, eps0: float) -> float:
    """``eps0`` at every step: stock GRPO/PPO clipping."""
    return eps0


def clip_values(
    name: str, total_steps: int, *, eps0: float = DEFAULT_EPS0, floor: float = DEFAULT_FLOOR
) -> list[float]:
    """The clip ratio of steps ``1..total_steps`` under schedule ``name``."""
    schedule = get_clip_schedule(name)
    validate_schedule_params(total_steps=total_steps, eps0=eps0, floor=floor)
    return [schedule(step, total_steps, eps0=eps0, floor=floor) for step in range(1, total_steps + 1)]
