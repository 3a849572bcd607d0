"""The clip schedules (pure functions, no torch) and the ``clip-schedule`` command."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cli import main as cli
from recipe.guardreasoner_vl.clip_schedule import (
    CLIP_SCHEDULE_REGISTRY,
    DEFAULT_FLOOR,
    clip_values,
    get_clip_schedule,
)

NAMES = ("product", "linear", "cosine", "constant")


def test_registry_holds_the_four_schedules():
    assert set(NAMES) <= set(CLIP_SCHEDULE_REGISTRY)


def test_product_matches_hand_computed_values():
    product = get_clip_schedule("product")
    # S = 4: 0.2 * 3/4, then * 2/4, then * 1/4, then * 0/4 (the paper's formula: floor 0).
    assert [product(s, 4, floor=0.0) for s in (1, 2, 3, 4)] == pytest.approx([0.15, 0.075, 0.01875, 0.0], abs=1e-15)
    # The default floor only lifts the last step: a real PPO step instead of a clip of exactly 0.
    assert [product(s, 4) for s in (1, 2, 3, 4)] == pytest.approx([0.15, 0.075, 0.01875, 0.01], abs=1e-15)
    # S = 10, s = 3: 0.2 * 9/10 * 8/10 * 7/10.
    assert product(3, 10, eps0=0.2) == pytest.approx(0.2 * 0.9 * 0.8 * 0.7)


def test_linear_cosine_constant_match_hand_computed_values():
    assert [get_clip_schedule("linear")(s, 4, floor=0) for s in (1, 2, 3, 4)] == pytest.approx([0.15, 0.1, 0.05, 0.0])
    cosine = get_clip_schedule("cosine")
    assert cosine(2, 4) == pytest.approx(0.1)  # cos(pi/2) = 0: half way
    assert cosine(1, 4) == pytest.approx(0.1 * (1 + math.cos(math.pi / 4)))
    assert [get_clip_schedule("constant")(s, 4, eps0=0.3) for s in (1, 2, 3, 4)] == [0.3] * 4


@pytest.mark.parametrize("name", ["product", "linear", "cosine"])
def test_decaying_schedules_reach_zero_or_the_floor_at_the_last_step(name):
    schedule = get_clip_schedule(name)
    assert schedule(7, 7, floor=0.0) == pytest.approx(0.0, abs=1e-15)
    assert schedule(7, 7) == DEFAULT_FLOOR == 0.01
    assert schedule(7, 7, floor=0.05) == 0.05


@given(
    name=st.sampled_from(NAMES),
    total=st.integers(1, 300),
    eps0=st.floats(1e-4, 0.99),
    floor_share=st.floats(0.0, 1.0),
)
def test_every_schedule_is_monotone_bounded_and_respects_the_floor(name, total, eps0, floor_share):
    floor = eps0 * floor_share
    values = clip_values(name, total, eps0=eps0, floor=floor)
    assert len(values) == total
    assert all(floor <= v <= eps0 for v in values)
    assert all(later <= earlier for earlier, later in zip(values, values[1:]))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"step": 0, "total_steps": 5}, r"step must be in \[1, total_steps=5\]"),
        ({"step": 6, "total_steps": 5}, r"step must be in \[1, total_steps=5\]"),
        ({"step": 1.5, "total_steps": 5}, "step must be an integer"),
        ({"step": 1, "total_steps": 0}, "total_steps must be an integer >= 1"),
        ({"step": 1, "total_steps": True}, "total_steps must be an integer >= 1"),
        ({"step": 1, "total_steps": 5, "eps0": 0.0}, r"eps0 must be a number in \(0, 1\)"),
        ({"step": 1, "total_steps": 5, "eps0": 1.0}, r"eps0 must be a number in \(0, 1\)"),
        ({"step": 1, "total_steps": 5, "eps0": float("nan")}, r"eps0 must be a number in \(0, 1\)"),
        ({"step": 1, "total_steps": 5, "floor": -0.1}, r"floor must be a number in \[0, eps0=0.2\]"),
        ({"step": 1, "total_steps": 5, "floor": 0.3}, r"floor must be a number in \[0, eps0=0.2\]"),
    ],
)
def test_bad_inputs_raise_naming_the_argument(kwargs, match):
    step, total = kwargs.pop("step"), kwargs.pop("total_steps")
    with pytest.raises(ValueError, match=match):
        get_clip_schedule("product")(step, total, **kwargs)


def test_unknown_schedule_lists_the_known_names():
    with pytest.raises(ValueError, match="unknown clip schedule 'exponential'; known schedules: constant, cosine"):
        get_clip_schedule("exponential")


def test_cli_prints_one_value_per_step(capsys):
    assert cli.main(["clip-schedule", "--total-steps", "4"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [float(x) for x in lines] == pytest.approx([0.15, 0.075, 0.01875, 0.01])
    assert cli.main(["clip-schedule", "--total-steps", "4", "--floor", "0"]) == 0
    assert float(capsys.readouterr().out.splitlines()[-1]) == 0.0


def test_cli_options_and_errors(capsys):
    assert cli.main(["clip-schedule", "--total-steps", "3", "--schedule", "linear", "--eps0", "0.3", "--floor", "0.05"]) == 0
    assert [float(x) for x in capsys.readouterr().out.splitlines()] == pytest.approx([0.2, 0.1, 0.05])
    assert cli.main(["clip-schedule", "--total-steps", "0"]) == 1
    assert "total_steps must be an integer >= 1" in capsys.readouterr().err
