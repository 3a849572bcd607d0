"""Scoring generation rows, the report files, and the resumable generations JSONL."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from sklearn import metrics as skm

from evaluation.generations import GenerationLog, read_generations
from evaluation.report import markdown_table, write_all
from evaluation.scoring import predicted_harmful, score_rows
from rewards.grammar import format_output


def out(req, resp="none"):
    return format_output("step 1. step 2.", req, None if resp == "none" else resp)


def test_prediction_reads_the_task_slot_and_none_is_unharmful():
    o = out("harmful", "none")
    assert predicted_harmful(o, "prompt") is True
    assert predicted_harmful(o, "response") is False  # "None" = no response = negative
    assert predicted_harmful(out("unharmful", "harmful"), "response") is True
    assert predicted_harmful("I refuse to answer", "prompt") is None
    assert predicted_harmful("<result>\nRequest: harmful\n</result>", "response") is None
    # The design §2 convention, not the reward's anti-gaming rules: a label line in the reasoning
    # does not void the answer, and the first slot of the result block counts.
    thinking_aloud = "<think>\nRequest: unharmful at first sight\n</think>\n<result>\nRequest: harmful\nResponse: None\n</result>"
    assert predicted_harmful(thinking_aloud, "prompt") is True


def _rows():
    rng = np.random.default_rng(3)
    rows = []
    for bench, task, n in (("ToxicChat", "prompt", 40), ("HarmImageTest", "prompt", 30), ("SafeRLHF", "response", 25)):
        for i in range(n):
            gold = "harmful" if rng.random() < 0.5 else "unharmful"
            r = rng.random()
            if r < 0.15:
                output = "garbled output without a result block"
            else:
                right = r < 0.8
                label = gold if right else ("unharmful" if gold == "harmful" else "harmful")
                output = out(label) if task == "prompt" else out("harmful", label)
            rows.append({"benchmark": bench, "task": task, "id": f"{bench}-{i}", "label": gold,
                         "output": output, "num_tokens": 100 + i})  # fmt: skip
    return rows


def test_score_rows_against_sklearn_and_weighted_averages():
    rows = _rows()
    results = score_rows(rows, seed=0, n_resamples=200)
    for s in results.scores:
        mine = [r for r in rows if r["benchmark"] == s.benchmark]
        gold = [r["label"] == "harmful" for r in mine]
        pred = [predicted_harmful(r["output"], s.task) for r in mine]
        pred = [(not g) if p is None else p for g, p in zip(gold, pred)]
        assert s.f1 == pytest.approx(skm.f1_score(gold, pred))
        assert s.parse_failures == sum(r["output"].startswith("garbled") for r in mine)
        assert s.n == len(mine) and s.mean_output_tokens == pytest.approx(np.mean([r["num_tokens"] for r in mine]))
    tc, hit = results.score("ToxicChat", "prompt"), results.score("HarmImageTest", "prompt")
    all_avg = results.average("prompt", "all")
    assert all_avg.f1 == pytest.approx((tc.f1 * 40 + hit.f1 * 30) / 70)
    assert all_avg.n == 70 and not all_avg.complete and all_avg.f1_ci[0] <= all_avg.f1 <= all_avg.f1_ci[1]
    assert results.average("prompt", "text").f1 == pytest.approx(tc.f1)  # HarmImageTest is not text
    assert results.average("response", "text").benchmarks == ("SafeRLHF",)
    # Same rows, same seed -> identical intervals.
    assert score_rows(rows, seed=0, n_resamples=200).to_dict() == results.to_dict()


def test_score_rows_rejects_bad_rows():
    with pytest.raises(ValueError, match="unknown benchmark prompt/Nope"):
        score_rows([{"benchmark": "Nope", "task": "prompt", "label": "harmful", "output": ""}])
    with pytest.raises(ValueError, match="row 1 .*unknown request label 'maybe'"):
        score_rows([{"benchmark": "ToxicChat", "task": "prompt", "label": "maybe", "output": ""}])
    with pytest.raises(ValueError, match="'none'.*cannot be scored"):
        score_rows([{"benchmark": "SafeRLHF", "task": "response", "label": None, "output": ""}])
    with pytest.raises(ValueError, match="num_tokens must be a non-negative integer"):
        score_rows([{"benchmark": "ToxicChat", "task": "prompt", "label": "harmful", "output": "", "num_tokens": "7"}])
    with pytest.raises(ValueError, match="task must be one of"):
        score_rows([{"benchmark": "ToxicChat", "task": "both", "label": "harmful", "output": ""}])


def test_reports_are_written(tmp_path):
    from PIL import Image

    results = score_rows(_rows(), seed=0, n_resamples=100)
    paths = write_all(results, tmp_path, model_name="tiny")
    data = json.loads(paths["json"].read_text())
    assert {b["benchmark"] for b in data["benchmarks"]} == {"ToxicChat", "HarmImageTest", "SafeRLHF"}
    assert data["meta"]["seed"] == 0 and data["meta"]["n_resamples"] == 100
    rows = list(csv.DictReader(paths["csv"].open()))
    assert [r["benchmark"] for r in rows][:3] == ["ToxicChat", "HarmImageTest", "SafeRLHF"]
    assert float(rows[0]["f1"]) == pytest.approx(100 * results.score("ToxicChat", "prompt").f1, abs=1e-3)
    md = paths["markdown"].read_text()
    assert "| GuardReasoner-VL-7B (paper) |" in md and "79.07" in md and "77.58" in md
    assert "ToxicChat (2853)" in md and "(partial)" in md
    for png in paths["charts"]:
        with Image.open(png) as img:
            assert img.format == "PNG" and img.size[0] > 300
    assert sorted(p.name for p in paths["charts"]) == ["f1_prompt.png", "f1_response.png"]
    assert "(paper) |" not in markdown_table(results, model_name="x", reference_models=[])


def test_generations_resume_after_truncated_write(tmp_path):
    path = tmp_path / "g.jsonl"
    rows = [{"benchmark": "ToxicChat", "task": "prompt", "id": str(i), "label": "harmful", "output": "x"} for i in range(3)]
    with GenerationLog(path) as log:
        log.write(rows[:2])
    with open(path, "a") as fh:  # a kill in the middle of the third line
        fh.write('{"benchmark": "ToxicChat", "task": "pro')
    assert [r["id"] for r in read_generations(path)] == ["0", "1"]
    read_generations(path, repair=True)
    with GenerationLog(path) as log:
        log.write(rows[2:])
    assert [r["id"] for r in read_generations(path)] == ["0", "1", "2"]


def test_generations_corrupt_middle_line_is_an_error(tmp_path):
    path = tmp_path / "g.jsonl"
    path.write_text('{"benchmark": "a", "task": "prompt", "label": "harmful", "output": ""}\nnot json\n{}\n')
    with pytest.raises(ValueError, match=r"g.jsonl:2: not valid JSON"):
        read_generations(path)
    path.write_text('{"benchmark": "a", "task": "prompt"}\n')
    with pytest.raises(ValueError, match=r"g.jsonl:1: missing field\(s\) label, output"):
        read_generations(path)
