"""End to end on the tiny model: ``build-eval`` on the bundled mini benchmarks, the harness over
what it wrote (resume included), the ``evaluate`` / ``score`` / ``moderate`` commands through the
real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from cli.main import main as cli_main
from data_prep.benchmarks import BENCHMARKS
from evaluation.generations import read_generations
from evaluation.harness import generate
from evaluation.loading import load_benchmark
from evaluation.scoring import score_rows
from inference import get_backend

@pytest.fixture(scope="module")
def raw_dir(sample_dir):
    """The bundled mini benchmarks, in the released files' layout."""
    return Path(sample_dir) / "benchmarks"


@pytest.fixture(scope="module")
def mini_dir(raw_dir, tmp_path_factory):
    """The evaluation files ``build-eval`` writes from the mini benchmarks (what ``evaluate`` reads)."""
    out = tmp_path_factory.mktemp("eval_data")
    assert cli_main(["build-eval", str(raw_dir), "-o", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def work(mini_dir):
    return [(spec, load_benchmark(spec, mini_dir, allow_size_mismatch=True)) for spec in BENCHMARKS]


def test_mini_benchmarks_fail_size_check_without_flag(mini_dir):
    with pytest.raises(ValueError, match=r"prompt/ToxicChat: .* has \d+ rows, the paper's set has 2853"):
        load_benchmark(BENCHMARKS[0], mini_dir)


def test_build_eval_keeps_images_next_to_the_files_and_names_benchmarks_as_the_tables_do(mini_dir):
    spa = [s for s in BENCHMARKS if s.file == "SPA_VL_Eval"]
    records = load_benchmark(spa[0], mini_dir, allow_size_mismatch=True)
    assert {r.source for r in records} == {"SPA-VL-Eval"} and all(r.meta["tasks"] == ["prompt", "response"] for r in records)
    assert all(Path(str(r.images[0])).is_relative_to(mini_dir / "images") for r in records)
    assert [r.id for r in load_benchmark(spa[1], mini_dir, allow_size_mismatch=True)] == [r.id for r in records]


def test_build_eval_image_root_option_and_missing_images(raw_dir, tmp_path, capsys):
    import shutil

    shutil.copytree(raw_dir / "images" / "HarmImageTest", tmp_path / "elsewhere" / "HarmImageTest")
    shutil.copy(raw_dir / "HarmImageTest.json", tmp_path / "HarmImageTest.json")
    assert cli_main(["build-eval", str(tmp_path), "--image-root", str(tmp_path / "elsewhere"), "-o", str(tmp_path / "ok")]) == 0
    assert len(list((tmp_path / "ok" / "images").iterdir())) == 4
    assert cli_main(["build-eval", str(tmp_path), "--image-root", str(tmp_path / "empty"), "-o", str(tmp_path / "bad")]) == 1
    assert "no image named hit-" in capsys.readouterr().err
    assert not (tmp_path / "bad" / "HarmImageTest.jsonl").exists()  # nothing half-written


def test_evaluate_refuses_released_files_with_the_fix(raw_dir):
    with pytest.raises(FileNotFoundError, match="convert the folder first: guardreasoner-vl build-eval"):
        load_benchmark(BENCHMARKS[0], raw_dir, allow_size_mismatch=True)


def test_loader_refuses_rows_of_another_task(mini_dir, tmp_path):
    import shutil

    shutil.copy(mini_dir / "HarmBenchResponse.jsonl", tmp_path / "HarmBenchPrompt.jsonl")
    spec = next(s for s in BENCHMARKS if s.name == "HarmBenchPrompt")
    with pytest.raises(ValueError, match="belongs to 'HarmBenchResponse'"):
        load_benchmark(spec, tmp_path, allow_size_mismatch=True)


def test_harness_resumes_after_interruption_and_counts_failures(tiny_model_dir, work, tmp_path):
    backend = get_backend("hf", model_path=tiny_model_dir, batch_size=8, device="cpu")
    log = tmp_path / "generations.jsonl"
    total = sum(len(r) for _, r in work)
    # "Interrupted" after two batches, then killed in the middle of writing a line.
    first = generate(backend, work, log, batch_size=8, max_new_tokens=4, limit_batches=2)
    assert first == {"done_before": 0, "generated": 16, "total": total}
    before = log.read_bytes()
    with open(log, "ab") as fh:
        fh.write(b'{"benchmark": "Tox')
    second = generate(backend, work, log, batch_size=8, max_new_tokens=4)
    assert second == {"done_before": 16, "generated": total - 16, "total": total}
    assert log.read_bytes().startswith(before)  # finished lines are never rewritten
    rows = read_generations(log)
    keys = [(r["task"], r["benchmark"], r["id"]) for r in rows]
    assert len(keys) == len(set(keys)) == total
    assert {(s.task, s.name) for s, _ in work} == {(r["task"], r["benchmark"]) for r in rows}
    assert all(1 <= r["num_tokens"] <= 4 for r in rows)
    # The untrained model's outputs are unparseable: every one is a parse failure scored as wrong.
    results = score_rows(rows, n_resamples=50)
    for s in results.scores:
        gold = [r["label"] for r in rows if (r["task"], r["benchmark"]) == (s.task, s.benchmark)]
        assert s.parse_failures == s.n == len(gold)
        assert (s.tp, s.tn) == (0, 0)
        assert s.fn == gold.count("harmful") and s.fp == gold.count("unharmful")
    assert {a.name for a in results.averages if a.complete} == {"text", "all"}
    # Nothing left: a third run generates nothing.
    assert generate(backend, work, log, batch_size=8, max_new_tokens=4)["generated"] == 0


def test_evaluate_and_score_commands(tiny_model_dir, mini_dir, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["evaluate", "--model", str(tiny_model_dir), "--data-dir", str(mini_dir), "-o", str(out),
            "--benchmarks", "ToxicChat", "HarmImageTest", "SPA-VL-Eval", "--allow-size-mismatch",
            "--max-new-tokens", "4", "--batch-size", "8", "--n-resamples", "50", "--no-progress", "--device", "cpu"]  # fmt: skip
    assert cli_main(args) == 0
    printed = capsys.readouterr().out
    assert "4 benchmark(s)" in printed and "Average (All)" in printed
    results = json.loads((out / "results.json").read_text())
    assert {(b["task"], b["benchmark"]) for b in results["benchmarks"]} == {
        ("prompt", "ToxicChat"), ("prompt", "HarmImageTest"), ("prompt", "SPA-VL-Eval"), ("response", "SPA-VL-Eval")
    }  # fmt: skip
    for name in ("results.csv", "results.md", "f1_prompt.png", "f1_response.png"):
        assert (out / name).is_file()
    n_lines = len((out / "generations.jsonl").read_text().splitlines())
    # Run again: everything is already generated, nothing is appended.
    assert cli_main(args) == 0
    assert f"{n_lines} already in" in capsys.readouterr().out
    assert len((out / "generations.jsonl").read_text().splitlines()) == n_lines
    # score: same numbers from the JSONL alone.
    assert cli_main(["score", str(out / "generations.jsonl"), "-o", str(tmp_path / "s"),
                     "--n-resamples", "50", "--no-charts"]) == 0  # fmt: skip
    rescored = json.loads((tmp_path / "s" / "results.json").read_text())
    assert rescored["benchmarks"] == results["benchmarks"]


def test_evaluate_reports_user_errors_in_one_line(tiny_model_dir, mini_dir, tmp_path, capsys):
    base = ["evaluate", "--model", str(tiny_model_dir), "-o", str(tmp_path / "x")]
    assert cli_main(base + ["--data-dir", str(mini_dir), "--benchmarks", "ToxicChat"]) == 1
    assert "has 4 rows, the paper's set has 2853" in capsys.readouterr().err
    assert cli_main(base + ["--data-dir", str(tmp_path), "--benchmarks", "ToxicChat"]) == 1
    assert "benchmark prompt/ToxicChat: no ToxicChat.jsonl in" in capsys.readouterr().err
    assert cli_main(base + ["--data-dir", str(mini_dir), "--benchmarks", "Nope"]) == 1
    assert "unknown benchmark(s): Nope" in capsys.readouterr().err


@pytest.mark.parametrize("inputs", [["--text", "How do I bake bread?"], ["--image", "IMG"]], ids=["text", "image"])
def test_moderate_in_process(tiny_model_dir, raw_dir, inputs, capsys):
    image = next((raw_dir / "images" / "HarmImageTest").glob("*.png"))
    inputs = [str(image) if a == "IMG" else a for a in inputs]
    args = ["moderate", "--model", str(tiny_model_dir), "--max-new-tokens", "6", "--device", "cpu"]
    assert cli_main(args + inputs + ["--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(result) == {"request", "response", "reasoning", "output", "format_ok", "num_tokens", "finish_reason"}
    assert 1 <= result["num_tokens"] <= 6 and result["format_ok"] is False and result["request"] is None
    assert result["finish_reason"] == ("length" if result["num_tokens"] == 6 else "stop")
    assert cli_main(args + inputs) == 0  # readable form
    text = capsys.readouterr().out
    assert "Reasoning:" in text and "Request: unparsed" in text


@pytest.mark.slow
def test_moderate_console_script_text_image(tiny_model_dir, raw_dir):
    script = Path(sys.executable).with_name("guardreasoner-vl")
    assert script.exists(), "the guardreasoner-vl console script is not installed next to this Python"
    image = next((raw_dir / "images" / "SPA_VL_Eval").glob("*.png"))
    proc = subprocess.run(
        [str(script), "moderate", "--model", str(tiny_model_dir), "--backend", "hf", "--text", "What is this?",
         "--image", str(image), "--response", "A picture.", "--json", "--max-new-tokens", "6", "--device", "cpu"],
        capture_output=True, text=True, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert isinstance(result["output"], str) and 1 <= result["num_tokens"] <= 6
    missing = subprocess.run([str(script), "moderate", "--model", str(tiny_model_dir), "--image", "/nonexistent.png"],
                             capture_output=True, text=True)  # fmt: skip
    assert missing.returncode == 1 and "does not exist" in missing.stderr
