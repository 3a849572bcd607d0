"""examples/pipeline.sh: the dry run prints every step's commands, they parse against the real CLIs, every
launched Hydra config composes and validates, steps are skippable and resumable; every example script parses."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
PIPELINE = REPO_ROOT / "examples" / "pipeline.sh"
SHELL_SCRIPTS = sorted(p.relative_to(REPO_ROOT) for p in (REPO_ROOT / "examples").rglob("*.sh"))
STEPS = ["data", "sft", "mine", "split", "concat", "grpo", "eval"]


def _run_pipeline(run_dir: Path, **env: str) -> subprocess.CompletedProcess:
    full_env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHON": sys.executable,
        "RUN_DIR": str(run_dir),
        **env,
    }
    return subprocess.run(
        ["bash", str(PIPELINE)], cwd=REPO_ROOT, env=full_env, capture_output=True, text=True)


def _commands(stdout: str) -> list[list[str]]:
    """The printed commands (``+ ...`` lines), as argv lists with the leading VAR=value words kept."""
    return [shlex.split(line[2:]) for line in stdout.splitlines() if line.startswith("+ ")]


def _strip_env(argv: list[str]) -> tuple[dict[str, str], list[str]]:
    env = {}
    while argv and "=" in argv[0] and not argv[0].startswith("-"):
        key, value = argv[0].split("=", 1)
        env[key] = value
        argv = argv[1:]
    return env, argv


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path]:
    run_dir = tmp_path_factory.mktemp("pipeline") / "run"
    proc = _run_pipeline(run_dir, DRY_RUN="1", MODEL_SIZE="7b", NNODES="1", GPUS_PER_NODE="4")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc, run_dir


# The dry runs below start the launch scripts' config checks, i.e. verl in fresh interpreters.
@pytest.mark.e2e
def test_dry_run_runs_every_step_in_order_and_creates_nothing(dry_run):
    proc, run_dir = dry_run
    headers = [line[3:] for line in proc.stdout.splitlines() if line.startswith("== ")]
    assert headers == STEPS
    assert not run_dir.exists(), "a dry run must not write anything"
    assert proc.stdout.rstrip().endswith("dry run: nothing was run")


@pytest.mark.e2e
def test_dry_run_checks_every_launched_config(dry_run):
    proc, _ = dry_run
    ok = [line for line in proc.stdout.splitlines() if line.startswith("config ok: ")]
    assert len(ok) == 2
    assert ok[0].startswith("config ok: sft (guardreasoner_vl_sft)")
    assert ok[1].startswith("config ok: grpo (guardreasoner_vl_grpo)")


@pytest.mark.e2e
def test_dry_run_commands_are_the_paper_pipeline(dry_run):
    proc, run_dir = dry_run
    programs = []
    for argv in _commands(proc.stdout):
        _, argv = _strip_env(argv)
        programs.append(" ".join(argv[:2]) if argv[0] != sys.executable else " ".join(argv[1:3]))
    assert programs == [
        "guardreasoner-vl build-sft",
        "guardreasoner-vl check-sft-lengths",
        "bash examples/sft/run_sft.sh",
        "guardreasoner-vl export-hf",
        "guardreasoner-vl mine",
        "guardreasoner-vl split",
        "guardreasoner-vl concat",
        "guardreasoner-vl build-rl",
        "guardreasoner-vl build-rl",
        "bash examples/grpo/run_grpo.sh",
        "guardreasoner-vl export-hf",
        "guardreasoner-vl build-eval",
        "guardreasoner-vl evaluate",
    ]
    sft_env, _ = _strip_env(_commands(proc.stdout)[2])
    assert sft_env["MODEL_PATH"] == "Qwen/Qwen2.5-VL-7B-Instruct" and sft_env["GPUS_PER_NODE"] == "4"
    grpo_env, _ = _strip_env(_commands(proc.stdout)[9])
    # GRPO starts from the exported R-SFT model and trains on the concat step's parquet.
    assert grpo_env["MODEL_PATH"] == str(run_dir / "models" / "r-sft")
    assert grpo_env["TRAIN_FILES"] == str(run_dir / "rl" / "train.parquet")


@pytest.mark.e2e
def test_dry_run_commands_parse_with_the_real_command_lines(dry_run):
    """Every printed guardreasoner-vl command is accepted by its real argument parser."""
    from cli import main as cli

    proc, _ = dry_run
    checked = 0
    for argv in _commands(proc.stdout):
        _, argv = _strip_env(argv)
        if argv[0] == "guardreasoner-vl":
            assert argv[1] in cli.COMMANDS
            cli.build_parser(only=argv[1]).parse_args(argv[1:])
            checked += 1
    assert checked == 11


def test_steps_with_existing_outputs_are_skipped_unless_forced(tmp_path):
    run_dir = tmp_path / "run"
    (run_dir / "data").mkdir(parents=True)
    (run_dir / "data" / "sft_train.parquet").write_bytes(b"")
    (run_dir / "models" / "r-sft").mkdir(parents=True)
    (run_dir / "split").mkdir()
    (run_dir / "split" / "train.jsonl").write_text("")  # val.jsonl missing: the step is not done
    proc = _run_pipeline(run_dir, DRY_RUN="1", STEPS="data,sft,split")
    assert proc.returncode == 0, proc.stderr
    assert "== data: skipped, outputs exist" in proc.stdout
    assert "== sft: skipped, outputs exist" in proc.stdout
    assert "\n== split\n" in proc.stdout and "+ guardreasoner-vl split" in proc.stdout
    assert "config ok" not in proc.stdout  # nothing launched, nothing to check

    forced = _run_pipeline(run_dir, DRY_RUN="1", STEPS="data", FORCE="1")
    assert forced.stdout.startswith("== data\n") and "+ guardreasoner-vl build-sft" in forced.stdout


def test_steps_and_skip_variables_select_steps(tmp_path):
    proc = _run_pipeline(tmp_path / "run", DRY_RUN="1", STEPS="split,concat,eval", SKIP_CONCAT="1")
    assert proc.returncode == 0, proc.stderr
    ran = [line[3:] for line in proc.stdout.splitlines() if line.startswith("== ") and "skipped" not in line]
    assert ran == ["split", "eval"]


def test_unknown_step_is_an_error(tmp_path):
    proc = _run_pipeline(tmp_path / "run", DRY_RUN="1", STEPS="data,rlhf")
    assert proc.returncode == 2
    assert "unknown step 'rlhf'" in proc.stderr


@pytest.mark.e2e
def test_dry_run_fails_when_a_launch_config_does_not_validate(tmp_path):
    # 192 samples per step cannot be split over 5 GPUs: caught before anything would launch.
    proc = _run_pipeline(tmp_path / "run", DRY_RUN="1", STEPS="sft", GPUS_PER_NODE="5")
    assert proc.returncode != 0
    assert "check-config: error: guardreasoner_vl_sft: data.train_batch_size=192 must divide" in proc.stderr
    assert "+ " not in proc.stdout  # stopped before printing the launch


@pytest.mark.parametrize("script", SHELL_SCRIPTS, ids=str)
def test_example_scripts_parse_and_stop_on_errors(script):
    result = subprocess.run(["bash", "-n", str(REPO_ROOT / script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "set -euo pipefail" in (REPO_ROOT / script).read_text() or "set -xeuo pipefail" in (
        REPO_ROOT / script
    ).read_text()
