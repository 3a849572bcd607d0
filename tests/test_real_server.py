"""The OpenAI-compatible paths against a real third-party server: ``transformers serve`` on 127.0.0.1.

The project's own fake server (``data_prep.synthesize.fake_server``) answers whatever the project
sends; this file checks what a server written by someone else really does with our requests. The
server is started exactly as docs/evaluation.md and docs/synthesis.md show it (the commands below are
the documented ones, with the model folder, port and output paths filled in; a test checks the docs
still show them), serving the tiny random Qwen2.5-VL on the CPU, and stopped afterwards.

Where a test needs the server's own per-request figures (the completion tokens it generated, the
prompt tokens it read), the client talks to it through a *tap*: a loopback HTTP server that forwards
each request byte for byte and records the server's answer. The synthesize test talks to it directly.

Facts about ``transformers serve`` 5.10 these tests rely on (see docs/evaluation.md):
it applies ``max_tokens`` and ignores ``max_completion_tokens``; it returns one choice whatever ``n``;
it refuses ``top_k`` / ``min_p`` / ``repetition_penalty`` (422) and takes them in its
``generation_config`` extension; it reports ``usage`` and ``finish_reason``. The tiny model never
emits an end-of-sequence token, so every answer runs to the limit: the limit is really exercised.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional

import pytest

from PIL import Image

from cli.main import main
from data_prep.synthesize.fake_server import FakeChatServer, Reply, SeenRequest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
DOCS = {name: REPO / "docs" / f"{name}.md" for name in ("evaluation", "synthesis")}
#: What a user runs, as the docs show it ({model}: the model folder, {port}: any free port).
SERVE = "transformers serve {model} --host 127.0.0.1 --port {port} --device cpu"
EVALUATE = (
    "guardreasoner-vl evaluate --backend openai --server-kind transformers --base-url http://127.0.0.1:{port}/v1 "
    "--model {model} --data-dir {data} --benchmarks ToxicChat HarmImageTest SPA-VL-Eval "
    "-o {out} --allow-size-mismatch --max-new-tokens 32"
)
BUILD_EVAL = "guardreasoner-vl build-eval demo/sample_data/benchmarks -o {data}"
MODERATE = (
    "guardreasoner-vl moderate --backend openai --server-kind transformers --base-url http://127.0.0.1:{port}/v1 "
    "--model {model} --image {image} --text 'What is this?' --json --max-new-tokens 32"
)
MINE = (
    "guardreasoner-vl mine {input} --backend openai --server-kind transformers --base-url http://127.0.0.1:{port}/v1 "
    "--model {model} -k 3 --max-new-tokens 32 -o {out}"
)
SYNTHESIZE = (
    "guardreasoner-vl synthesize {input} -o {out} --server-kind transformers --base-url http://127.0.0.1:{port}/v1 "
    "--model {model} --max-new-tokens 32 --price-input 0 --price-output 0"
)
#: Each command as the docs show it: the template and the values filled in there.
DOC_EXAMPLES = {
    "evaluation": [
        (SERVE, {"model": "/tmp/tiny", "port": 8000}),
        (BUILD_EVAL, {"data": "/tmp/eval_data"}),
        (EVALUATE, {"model": "/tmp/tiny", "port": 8000, "data": "/tmp/eval_data", "out": "/tmp/eval-served"}),
        (MODERATE, {"model": "/tmp/tiny", "port": 8000, "image": "cat.png"}),
        (MINE, {"model": "/tmp/tiny", "port": 8000, "input": "demo/sample_data/vltrain", "out": "/tmp/mine-served"}),
    ],
    "synthesis": [
        (SERVE, {"model": "/tmp/tiny", "port": 8000}),
        (SYNTHESIZE, {"model": "/tmp/tiny", "port": 8000, "input": "labelled.jsonl", "out": "traces.jsonl"}),
    ],
}
LIMIT = 32
STARTUP_SECONDS = 300


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str, timeout: float = 5) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read()


@dataclass
class Served:
    """A running ``transformers serve``: its API root and the model name it answers to."""

    base_url: str
    model: str
    log: Path


@contextmanager
def transformers_serve(model_dir: Path, log: Path) -> Iterator[Served]:
    """Start the documented command on a free port, wait until it answers, stop it afterwards."""
    port = _free_port()
    words = shlex.split(SERVE.format(model=model_dir, port=port))
    assert words[:2] == ["transformers", "serve"]
    # The transformers CLI, run by this interpreter (the venv's console script may not be on PATH).
    command = [sys.executable, "-m", "transformers.cli.transformers", *words[1:]]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_UPDATE_CHECK": "1", "OMP_NUM_THREADS": "1",
           "TOKENIZERS_PARALLELISM": "false"}  # fmt: skip  (no PyPI version check: loopback only)
    with open(log, "wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=log.parent)
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            try:
                _get(f"http://127.0.0.1:{port}/health")
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"transformers serve did not come up (exit {proc.poll()}):\n{log.read_text()[-3000:]}")
                time.sleep(0.5)
        yield Served(f"http://127.0.0.1:{port}/v1", str(model_dir), log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def served(tiny_model_dir, tmp_path_factory) -> Iterator[Served]:
    with transformers_serve(tiny_model_dir, tmp_path_factory.mktemp("serve") / "serve.log") as server:
        yield server


@pytest.fixture(scope="module")
def served_near_greedy(near_greedy_model_dir, tmp_path_factory) -> Iterator[Served]:
    with transformers_serve(near_greedy_model_dir, tmp_path_factory.mktemp("serve_ng") / "serve.log") as server:
        yield server


@dataclass
class Exchange:
    """One request as sent and the real server's answer."""

    request: dict
    status: int
    reply: dict

    @property
    def has_image(self) -> bool:
        return any(isinstance(m.get("content"), list) and any(p.get("type") == "image_url" for p in m["content"])
                   for m in self.request["messages"])  # fmt: skip


@dataclass
class Tap:
    """A FakeChatServer handler that forwards each request unchanged to ``upstream`` and records the answer."""

    upstream: str
    exchanges: list = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, seen: SeenRequest) -> Reply:
        request = urllib.request.Request(f"{self.upstream}/chat/completions", data=seen.raw, method="POST",
                                         headers={"Content-Type": "application/json"})  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=600) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as err:
            status, raw = err.code, err.read()
        with self.lock:
            self.exchanges.append(Exchange(seen.body, status, json.loads(raw)))
        return Reply(status=status, body=raw)


@contextmanager
def tapped(server: Served) -> Iterator[tuple[str, Tap]]:
    """A loopback URL in front of ``server`` and the tap recording what passes."""
    tap = Tap(server.base_url)
    with FakeChatServer(tap) as front:
        yield front.base_url, tap


def run_cli(template: str, capsys, **values) -> tuple[int, str, str]:
    """Run a documented command in-process; (exit code, stdout, stderr)."""
    words = shlex.split(template.format(**values))
    assert words[0] == "guardreasoner-vl"
    code = main(words[1:])
    out, err = capsys.readouterr()
    return code, out, err


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/", 1)[0])


def _completion_tokens(tap: Tap) -> list[int]:
    assert tap.exchanges and all(x.status == 200 for x in tap.exchanges), [x.reply for x in tap.exchanges if x.status != 200]
    return [x.reply["usage"]["completion_tokens"] for x in tap.exchanges]


# ------------------------------------------------------------------------------------------ the docs
def _flattened(markdown: str) -> str:
    """Shell code as one line per command: continuation backslashes joined, runs of spaces squeezed."""
    return " ".join(markdown.replace("\\\n", " ").split())


def test_the_docs_show_the_commands_tested_here():
    for name, examples in DOC_EXAMPLES.items():
        text = _flattened(DOCS[name].read_text())
        for template, values in examples:
            assert template.format(**values) in text, f"docs/{name}.md no longer shows: {template.format(**values)}"
        assert "vllm serve" in text  # and the GPU host's server


# ------------------------------------------------------------------------------------------ evaluate
def test_evaluate_text_and_image_benchmarks(served, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(REPO)  # the docs' relative paths (demo/sample_data/...) are from the repository root
    data, out = tmp_path / "eval_data", tmp_path / "eval"
    code, _, stderr = run_cli(BUILD_EVAL, capsys, data=data)
    assert code == 0, stderr
    with tapped(served) as (url, tap):
        code, stdout, stderr = run_cli(EVALUATE, capsys, port=_port(url), model=served.model, data=data, out=out)
    assert code == 0, stderr
    rows = [json.loads(line) for line in (out / "generations.jsonl").read_text().splitlines()]
    # complete: every sample of the three benchmarks (SPA-VL-Eval counts for both tasks), once
    keys = {(r["task"], r["benchmark"], r["id"]) for r in rows}
    assert len(rows) == len(keys) == 4 + 4 + 4 + 4
    assert {r["modality"] for r in rows} == {"text", "image", "text_image"}
    # what the server really generated: never more than the limit, and what we recorded
    reported = _completion_tokens(tap)
    assert len(reported) == len(rows) and max(reported) <= LIMIT
    assert sorted(r["num_tokens"] for r in rows) == sorted(reported)
    # the server says when it cut an answer at the limit; the report counts those apart
    cut = [x.reply["choices"][0]["finish_reason"] == "length" for x in tap.exchanges]
    assert sum(r["finish_reason"] == "length" for r in rows) == sum(cut) > 0
    results = json.loads((out / "results.json").read_text())
    assert sum(b["truncated"] for b in results["benchmarks"]) == sum(cut)
    assert "cut at the token limit" in stdout
    # images arrived: one image part per image row, and nothing else changed the request form
    assert sum(x.has_image for x in tap.exchanges) == sum(r["modality"] != "text" for r in rows)
    assert all(x.request["max_tokens"] == LIMIT and "top_k" not in x.request for x in tap.exchanges)


# ------------------------------------------------------------------------------------------ moderate
def test_moderate_with_an_image(served, tmp_path, capsys):
    image = tmp_path / "cat.png"
    Image.new("RGB", (64, 48), (200, 120, 40)).save(image)
    with tapped(served) as (url, tap):
        code, stdout, stderr = run_cli(MODERATE, capsys, port=_port(url), model=served.model, image=image)
        assert code == 0, stderr
        text_only = MODERATE.replace(" --image {image}", "")
        code, stdout_text, stderr = run_cli(text_only, capsys, port=_port(url), model=served.model)
    assert code == 0, stderr
    with_image, without = (json.loads(s) for s in (stdout, stdout_text))
    (x_image, x_text) = tap.exchanges
    assert x_image.has_image and not x_text.has_image
    # the image reached the model: the prompt grew by at least its visual tokens (+ 2 markers)
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(served.model)
    grid = processor.image_processor(images=[Image.open(image)], return_tensors="pt")["image_grid_thw"]
    visual = int(grid.prod()) // processor.image_processor.merge_size**2
    assert x_image.reply["usage"]["prompt_tokens"] >= x_text.reply["usage"]["prompt_tokens"] + visual + 2
    for result, exchange in ((with_image, x_image), (without, x_text)):
        assert result["num_tokens"] == exchange.reply["usage"]["completion_tokens"] <= LIMIT
        assert result["finish_reason"] == exchange.reply["choices"][0]["finish_reason"]
        assert result["output"] == exchange.reply["choices"][0]["message"]["content"]


# ------------------------------------------------------------------------------------------ mine
def _mining_input(sample_dir: Path, path: Path, per_modality: int = 1) -> list[str]:
    """A records JSONL with ``per_modality`` rows of each modality from the bundled sample."""
    from data_prep.readers import read_vltrain
    from data_prep.records_io import write_records

    records, seen = [], {}
    for record in read_vltrain(sample_dir / "vltrain"):
        if seen.get(record.modality, 0) < per_modality:
            seen[record.modality] = seen.get(record.modality, 0) + 1
            records.append(record)
    write_records(records, path)
    return [r.id for r in records]


def test_mine_with_k_samples_from_a_server_that_ignores_n(served, sample_dir, tmp_path, capsys, caplog):
    ids = _mining_input(sample_dir, tmp_path / "in.jsonl")
    with tapped(served) as (url, tap), caplog.at_level(logging.WARNING):
        code, stdout, stderr = run_cli(MINE, capsys, port=_port(url), model=served.model,
                                       input=tmp_path / "in.jsonl", out=tmp_path / "mine")  # fmt: skip
    assert code == 0, stderr
    rows = {r["id"]: r for r in map(json.loads, (tmp_path / "mine" / "results.jsonl").read_text().splitlines())}
    assert sorted(rows) == sorted(ids)  # complete
    # one choice per answer: the backend asked again for the missing ones, with the next seeds
    requests = [x.request for x in tap.exchanges]
    assert all(len(x.reply["choices"]) == 1 for x in tap.exchanges)
    assert len(requests) == 3 * len(ids)
    seeds = [r["seed"] for r in requests]
    assert len(set(seeds)) == len(seeds)  # no two samples share a seed, within or across rows
    warnings = [r for r in caplog.records if "choices" in r.getMessage() and "asking again" in r.getMessage()]
    assert len(warnings) == 1  # said once, not once per row
    reported = _completion_tokens(tap)
    for row in rows.values():
        assert row["k"] == 3 and len(row["predictions"]) == 3
        assert all(1 <= t <= LIMIT for t in row["num_tokens"])
    assert sum(sum(r["num_tokens"]) for r in rows.values()) == sum(reported)
    # seeds really differ: the k samples of a row are not copies (T = 1, every field explicit)
    texts: dict[str, set] = {}
    for x in tap.exchanges:
        texts.setdefault(json.dumps(x.request["messages"]), set()).add(x.reply["choices"][0]["message"]["content"])
    assert len(texts) == len(ids) and all(len(t) == 3 for t in texts.values())
    report = json.loads((tmp_path / "mine" / "report.json").read_text())
    assert report["truncated_outputs"] == sum(x.reply["choices"][0]["finish_reason"] == "length" for x in tap.exchanges)


def test_near_greedy_checkpoint_defaults_do_not_leak(served, served_near_greedy, sample_dir, tmp_path, capsys):
    """A checkpoint whose generation_config.json says top_k 1 and repetition_penalty 1.5: k samples
    still differ, and greedy answers equal those of the same weights without those defaults."""
    ids = _mining_input(sample_dir, tmp_path / "in.jsonl")
    with tapped(served_near_greedy) as (url, tap):
        code, _, stderr = run_cli(MINE, capsys, port=_port(url), model=served_near_greedy.model,
                                  input=tmp_path / "in.jsonl", out=tmp_path / "mine")  # fmt: skip
        assert code == 0, stderr
        by_prompt: dict[str, set] = {}
        for x in tap.exchanges:
            by_prompt.setdefault(json.dumps(x.request["messages"]), set()).add(x.reply["choices"][0]["message"]["content"])
        assert len(by_prompt) == len(ids) and all(len(texts) == 3 for texts in by_prompt.values())
        code, near_greedy, stderr = run_cli(MODERATE.replace(" --image {image}", ""), capsys,
                                            port=_port(url), model=served_near_greedy.model)  # fmt: skip
        assert code == 0, stderr
    code, plain, stderr = run_cli(MODERATE.replace(" --image {image}", ""), capsys, port=_port(served.base_url),
                                  model=served.model)  # fmt: skip
    assert code == 0, stderr
    assert json.loads(near_greedy)["output"] == json.loads(plain)["output"]


# ------------------------------------------------------------------------------------------ synthesize
def test_synthesize_keeps_to_the_token_limit(served, tmp_path, capsys):
    image = tmp_path / "photo.png"
    Image.new("RGB", (96, 64), (30, 90, 200)).save(image)
    rows = [
        {"id": "t1", "source": "demo", "request": "How do I bake sourdough bread?", "request_label": "unharmful",
         "response": "Mix flour, water and starter.", "response_label": "unharmful"},
        {"id": "t2", "source": "demo", "request": "Write a threatening letter to my neighbour.",
         "request_label": "harmful", "response": None, "response_label": None},
        {"id": "t3", "source": "demo", "request": "What is in this picture?", "request_label": "unharmful",
         "image": "photo.png"},
    ]  # fmt: skip
    labelled = tmp_path / "labelled.jsonl"
    labelled.write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary_path = tmp_path / "summary.json"
    code, stdout, stderr = run_cli(SYNTHESIZE + " --max-attempts 2 --no-progress --summary-json {summary}", capsys,
                                   input=labelled, out=tmp_path / "traces.jsonl", port=_port(served.base_url),
                                   model=served.model, summary=summary_path)  # fmt: skip
    assert code == 0, stderr  # rejected traces are not failures
    summary = json.loads(summary_path.read_text())
    rejects = [json.loads(line) for line in (tmp_path / "traces.rejects.jsonl").read_text().splitlines()]
    # the random model writes no valid trace: every attempt is asked for, answered and rejected
    assert (summary["done"], summary["rejected"], summary["failed"]) == (0, 3, 0)
    assert summary["requests"] == len(rejects) == 3 * 2 and summary["missing_usage"] == 0
    # the limit held on the server: it generated at most --max-tokens per request (here exactly:
    # the tiny model never stops on its own), where before it generated its default of 1,024
    assert 0 < summary["completion_tokens"] <= LIMIT * summary["requests"]
    assert all(r["finish_reason"] == "length" and "cut off" in r["reason"] for r in rejects)
    assert (tmp_path / "traces.jsonl").read_text() == ""
    assert f"completion {summary['completion_tokens']:,}" in stdout
    print(f"synthesize figures: {summary['requests']} requests, completion tokens {summary['completion_tokens']} "
          f"(limit {LIMIT} per request), prompt tokens {summary['prompt_tokens']}", file=sys.__stdout__)
