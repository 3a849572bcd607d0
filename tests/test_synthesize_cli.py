"""``guardreasoner-vl synthesize`` as a user runs it: a subprocess, a real server, SIGKILL, secrets.

Each run talks to its own :class:`FakeChatServer`, so "what the second run sent" is exactly the
second server's log (a request the killed process had already written to its socket can never be
mistaken for one sent by the rerun).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from data_prep.synthesize.fake_server import FakeChatServer, Reply, SeenRequest, error_reply, oracle
from cli.main import main

REPO = Path(__file__).resolve().parents[1]
SECRET = "sk-test-Do-Not-Leak-4f9c2e7a1b"
_ITEM = re.compile(r"item (\w+)\.")


def write_input(path: Path, n: int) -> list[str]:
    ids = [f"r{i:03d}" for i in range(n)]
    with open(path, "w") as handle:
        for i, rid in enumerate(ids):
            row = {"id": rid, "source": "cli", "request": f"Tell me about item {rid}.", "request_label": "unharmful",
                   "response": None if i % 3 else "It is a chair.", "response_label": None if i % 3 else "unharmful"}
            handle.write(json.dumps(row) + "\n")
    return ids


def cli(args: list[str], *, env_extra: dict | None = None) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), **(env_extra or {})}
    env.pop("OPENAI_API_KEY", None)
    env.update(env_extra or {})
    return subprocess.Popen(
        [sys.executable, "-m", "cli.main", "synthesize", *args],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def complete_ids(path: Path) -> list[str]:
    """Ids on complete lines (a torn last line, without its newline, is not a finished record)."""
    data = path.read_bytes() if path.exists() else b""
    return [json.loads(line)["id"] for line in data[: data.rfind(b"\n") + 1].splitlines() if line.strip()]


def sent_ids(server: FakeChatServer) -> list[str]:
    return [_ITEM.search(r.user_text).group(1) for r in server.requests]


def test_sigkill_mid_run_then_rerun_loses_nothing_and_repeats_nothing(tmp_path):
    ids = write_input(tmp_path / "in.jsonl", 60)
    out = tmp_path / "out.jsonl"
    common = ["--concurrency", "4", "--no-progress", "--fsync-interval", "0.2", "--price-input", "0", "--price-output", "0"]
    slow = lambda request: oracle(request, delay=0.1)  # noqa: E731 - 60 records / 4 in flight: ~1.5 s of work
    with FakeChatServer(slow) as first:
        proc = cli([str(tmp_path / "in.jsonl"), "-o", str(out), "--base-url", first.base_url, *common])
        deadline = time.monotonic() + 120
        while len(complete_ids(out)) < 8 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
    finished = complete_ids(out)
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert 8 <= len(finished) < len(ids)
    assert len(set(finished)) == len(finished)

    with FakeChatServer(oracle) as second:
        proc = cli([str(tmp_path / "in.jsonl"), "-o", str(out), "--base-url", second.base_url, *common])
        stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    again = sent_ids(second)
    assert not set(again) & set(finished), "a finished record was requested again"
    assert sorted(again) == sorted(set(ids) - set(finished))  # each unfinished record exactly once
    final = complete_ids(out)
    assert sorted(final) == ids  # every record exactly once
    assert out.read_bytes().endswith(b"\n")
    assert f"done {len(ids) - len(finished)}," in stdout and f"{len(finished)} done" in stdout


def test_api_key_is_sent_but_never_printed_logged_or_written(tmp_path):
    write_input(tmp_path / "in.jsonl", 6)
    out = tmp_path / "out.jsonl"
    summary_json = tmp_path / "summary.json"

    def handler(request: SeenRequest) -> Reply:
        rid = _ITEM.search(request.user_text).group(1)
        if rid == "r001":  # a server that echoes the key back in its error message
            return error_reply(400, f"Incorrect API key provided: {request.headers['authorization']}")
        if rid == "r002" and sum(1 for r in server.requests if "r002" in r.user_text) == 1:
            return error_reply(429, f"rate limited for {request.headers['authorization']}", headers={"Retry-After": "0"})
        return oracle(request)

    with FakeChatServer(handler) as server:
        proc = cli(
            [str(tmp_path / "in.jsonl"), "-o", str(out), "--base-url", server.base_url, "-v",
             "--summary-json", str(summary_json), "--backoff-base", "0.01"],
            env_extra={"OPENAI_API_KEY": SECRET, "GUARDREASONER_DEBUG": "1", "OPENAI_LOG": "debug"},
        )
        stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 3, stderr  # one record failed (the 400)
    assert {r.headers["authorization"] for r in server.requests} == {f"Bearer {SECRET}"}  # it was used
    assert "retry 1" in stderr  # verbose logging really ran (and was filtered)
    texts = {"stdout": stdout, "stderr": stderr}
    texts.update({p.name: p.read_text(errors="replace") for p in tmp_path.rglob("*") if p.is_file() and p.name != "in.jsonl"})
    for name, text in texts.items():
        assert SECRET not in text, f"API key leaked into {name}"
        assert SECRET[-12:] not in text, f"part of the API key leaked into {name}"
    (failed,) = [json.loads(line) for line in (tmp_path / "out.rejects.jsonl").read_text().splitlines()]
    assert failed["id"] == "r001" and "Bearer ***" in failed["reason"]
    assert json.loads(summary_json.read_text())["failed"] == 1


def test_unauthorized_is_one_line_error_without_the_key(tmp_path, capsys, monkeypatch):
    write_input(tmp_path / "in.jsonl", 3)
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.delenv("GUARDREASONER_DEBUG", raising=False)
    with FakeChatServer(lambda r: error_reply(401, f"bad key {r.headers['authorization']}")) as server:
        code = main(["synthesize", str(tmp_path / "in.jsonl"), "-o", str(tmp_path / "out.jsonl"),
                     "--base-url", server.base_url, "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1
    assert "error: HTTP 401: bad key Bearer ***" in err and "check OPENAI_API_KEY" in err
    assert SECRET not in err


def test_missing_key_for_the_official_api_and_show_prompt(tmp_path, capsys, monkeypatch):
    write_input(tmp_path / "in.jsonl", 2)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("GUARDREASONER_DEBUG", raising=False)
    assert main(["synthesize", str(tmp_path / "in.jsonl"), "-o", str(tmp_path / "o.jsonl")]) == 1
    assert "set OPENAI_API_KEY" in capsys.readouterr().err
    assert main(["synthesize", str(tmp_path / "in.jsonl"), "-o", str(tmp_path / "o.jsonl"), "--show-prompt"]) == 0
    shown = capsys.readouterr().out
    assert "----- user -----" in shown and "Tell me about item r000." in shown and "Request: unharmful" in shown
    assert not (tmp_path / "o.jsonl").exists()


@pytest.mark.parametrize("bad", [["--concurrency", "0"], ["--price-input", "1"], ["--template", "missing.txt"]])
def test_bad_options_are_one_line_errors(tmp_path, capsys, monkeypatch, bad):
    write_input(tmp_path / "in.jsonl", 1)
    monkeypatch.delenv("GUARDREASONER_DEBUG", raising=False)
    assert main(["synthesize", str(tmp_path / "in.jsonl"), "-o", str(tmp_path / "o.jsonl"), *bad]) == 1
    assert "synthesize: error:" in capsys.readouterr().err
