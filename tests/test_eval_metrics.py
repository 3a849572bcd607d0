"""Metrics against scikit-learn, edge cases, bootstrap CIs and the paper's sample weighting."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

from data_prep.benchmarks import BENCHMARKS, select
from evaluation.reference import PAPER_AVERAGES, PAPER_PER_BENCHMARK
from evaluation.metrics import (
    bootstrap_f1,
    confusion_counts,
    f1_score,
    percentile_interval,
    precision_score,
    predictions_with_failures,
    recall_score,
    score_benchmark,
    weighted_average,
)

labels = st.lists(st.booleans(), min_size=1, max_size=200)


@settings(max_examples=80, deadline=None)
@given(data=st.data(), zero_division=st.sampled_from([0.0, 1.0]))
def test_matches_sklearn_on_random_labels(data, zero_division):
    y_true = data.draw(labels)
    y_pred = data.draw(st.lists(st.booleans(), min_size=len(y_true), max_size=len(y_true)))
    kw = {"zero_division": zero_division}
    assert f1_score(y_true, y_pred, **kw) == pytest.approx(skm.f1_score(y_true, y_pred, **kw))
    assert precision_score(y_true, y_pred, **kw) == pytest.approx(skm.precision_score(y_true, y_pred, **kw))
    assert recall_score(y_true, y_pred, **kw) == pytest.approx(skm.recall_score(y_true, y_pred, **kw))


@pytest.mark.parametrize(
    "y_true,y_pred",
    [
        ([1, 1, 1], [1, 1, 1]),  # all positive, all right
        ([1, 1, 1], [0, 0, 0]),  # all positive, all wrong
        ([0, 0, 0], [0, 0, 0]),  # no positive anywhere: F1 undefined -> zero_division
        ([0, 0, 0], [1, 0, 1]),  # no gold positive, some predicted
        ([0, 1, 0, 1], [0, 0, 0, 0]),  # nothing predicted positive
    ],
)
@pytest.mark.parametrize("zero_division", [0.0, 1.0])
def test_one_class_edge_cases_match_sklearn(y_true, y_pred, zero_division):
    for ours, theirs in (
        (f1_score, skm.f1_score),
        (precision_score, skm.precision_score),
        (recall_score, skm.recall_score),
    ):
        assert ours(y_true, y_pred, zero_division=zero_division) == pytest.approx(
            theirs(y_true, y_pred, zero_division=zero_division)
        )


def test_inputs_are_validated():
    with pytest.raises(ValueError, match="differ in length: 2 vs 3"):
        f1_score([1, 0], [1, 0, 1])
    with pytest.raises(ValueError, match="0/1"):
        f1_score([1, 2], [1, 0])
    with pytest.raises(ValueError, match="one-dimensional"):
        confusion_counts(np.ones((2, 2)), np.ones((2, 2)))
    with pytest.raises(ValueError, match="zero_division"):
        f1_score([1], [1], zero_division=2.0)


def test_parse_failures_count_as_wrong():
    gold = [1, 1, 0, 0]
    pred = predictions_with_failures(gold, [True, None, None, False])
    assert pred.tolist() == [True, False, True, False]  # None -> the opposite of gold
    c = confusion_counts(gold, pred)
    assert (c.tp, c.fp, c.fn, c.tn) == (1, 1, 1, 1)


def test_score_benchmark_counts_and_tokens():
    rng = np.random.default_rng(0)
    score, draws = score_benchmark(
        "X", "prompt", [1, 1, 0, 0, 1], [True, None, False, None, True], num_tokens=[10, 0, 20, 30, 0], rng=rng
    )
    assert (score.tp, score.fp, score.fn, score.tn, score.parse_failures) == (2, 1, 1, 1, 2)
    assert score.f1 == pytest.approx(skm.f1_score([1, 1, 0, 0, 1], [1, 0, 0, 1, 1]))
    assert score.mean_output_tokens == pytest.approx(20.0)  # zeros are "unknown", left out
    assert draws.shape == (1000,)
    assert score.f1_ci[0] <= score.f1 <= score.f1_ci[1]


def test_bootstrap_matches_index_resampling_and_is_seeded():
    rng = np.random.default_rng(1)
    y_true = rng.random(400) < 0.4
    y_pred = np.where(rng.random(400) < 0.8, y_true, ~y_true)
    c = confusion_counts(y_true, y_pred)
    fast = bootstrap_f1(c, n_resamples=4000, rng=np.random.default_rng(7))
    again = bootstrap_f1(c, n_resamples=4000, rng=np.random.default_rng(7))
    np.testing.assert_array_equal(fast, again)
    # The classic bootstrap (resample indices, recount) gives the same distribution.
    idx = np.random.default_rng(8).integers(0, 400, (2000, 400))
    t, p = y_true[idx], y_pred[idx]
    tp, fp, fn = (t & p).sum(1), (~t & p).sum(1), (t & ~p).sum(1)
    slow = 2 * tp / (2 * tp + fp + fn)
    assert slow[0] == pytest.approx(skm.f1_score(t[0], p[0]))
    assert np.mean(fast) == pytest.approx(np.mean(slow), abs=0.01)
    assert np.std(fast) == pytest.approx(np.std(slow), rel=0.15)
    lo, hi = percentile_interval(fast)
    assert lo < f1_score(y_true, y_pred) < hi


def test_registry_matches_design_sizes():
    prompt = {s.name: s.size for s in select(tasks=["prompt"])}
    response = {s.name: s.size for s in select(tasks=["response"])}
    assert len(BENCHMARKS) == 14 and len(prompt) == 8 and len(response) == 6
    assert sum(prompt.values()) == 13564 and sum(response.values()) == 11119
    assert prompt["HarmImageTest"] == 3295 and response["WildGuardTest"] == 1768


def test_weighted_average_uses_sample_counts():
    # The paper's averages weight by sample count: check by hand on the registry's prompt sizes.
    specs = select(tasks=["prompt"])
    sizes = {s.name: s.size for s in specs}
    f1 = {name: 50.0 for name in sizes} | {"ToxicChat": 90.0}
    expected = (90.0 * 2853 + 50.0 * (13564 - 2853)) / 13564
    assert weighted_average(f1, sizes) == pytest.approx(expected)
    assert weighted_average(f1, sizes) != pytest.approx(np.mean(list(f1.values())))
    # Text average: the six text benchmarks only.
    text = {s.name: s.size for s in specs if s.is_text}
    assert sum(text.values()) == 6987
    with pytest.raises(ValueError, match="no sample count for: Foo"):
        weighted_average({"Foo": 1.0}, sizes)
    with pytest.raises(ValueError, match="nothing to average"):
        weighted_average({}, sizes)


@pytest.mark.parametrize("model", sorted(PAPER_PER_BENCHMARK))
@pytest.mark.parametrize("task", ["prompt", "response"])
def test_weighting_reproduces_the_papers_averages(model, task):
    """Sample-weighted averages of Tables 1-2's per-benchmark F1 give the paper's Average columns.

    GuardReasoner-VL-7B: Average (All) 79.07 (prompt) and 77.58 (response), within 0.1.
    """
    per_benchmark = PAPER_PER_BENCHMARK[model][task]
    specs = select(tasks=[task])
    assert set(per_benchmark) == {s.name for s in specs}
    sizes = {s.name: s.size for s in specs}
    text = {s.name: per_benchmark[s.name] for s in specs if s.is_text}
    assert weighted_average(per_benchmark, sizes) == pytest.approx(PAPER_AVERAGES[model][task]["all"], abs=0.1)
    assert weighted_average(text, sizes) == pytest.approx(PAPER_AVERAGES[model][task]["text"], abs=0.1)
    # An unweighted mean would not: the weighting is what the paper used.
    if model == "GuardReasoner-VL-7B":
        assert abs(np.mean(list(per_benchmark.values())) - PAPER_AVERAGES[model][task]["all"]) > 1.0
