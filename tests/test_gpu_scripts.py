"""The GPU run kit (``benchmarks/gpu/``), tested on the CPU.

- the carrier's chunks: split, staged reassembly, and every way a transfer can go wrong (a corrupted,
  truncated or missing chunk set, sets from two carrier runs) is caught and names the set to carry again;
- the carrier's selection from pip's report: the host's torch and usable host packages subtracted, a
  too-new host package carried anyway, excluded packages pruned with what only they need, markers
  evaluated for the host's Python;
- the host install (``e2e``: starts pip): staged over three sets, one offline ``pip --target`` call at the
  end that keeps both halves of a shared namespace folder, reruns skip, a corrupted set stops it;
- the figures, from real metrics files of the CPU rehearsal (``benchmarks/results/``), and the checks
  that fail on a missing step, a wrong clip or a missing F1;
- the run configs: the GPU overrides of the resume run, the vLLM smoke run and R-SFT pass the project's
  config check; the plugin loads without an install (how the bare host runs it);
- end to end on the CPU backend (``e2e``): R-SFT steps under torchrun, the smoke run, the resume run.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.gpu import carrier, chunks, figures, monitor, workload

REPO_ROOT = Path(__file__).resolve().parents[1]
GPU = REPO_ROOT / "benchmarks" / "gpu"
RESULTS = REPO_ROOT / "benchmarks" / "results"
REHEARSAL = RESULTS / "grpo_resume_cpu_rehearsal.json"


# ------------------------------------------------------------------------------------------- chunks
def _files(folder: Path, sizes: list[int], seed: int = 0) -> list[Path]:
    paths = []
    for index, size in enumerate(sizes):
        path = folder / f"pkg{index}-1.0-py3-none-any.whl"
        path.write_bytes(hashlib.shake_256(f"{seed}-{index}".encode()).digest(size))
        paths.append(path)
    return paths


@settings(max_examples=40, deadline=None)
@given(sizes=st.lists(st.integers(1, 5000), min_size=1, max_size=5), chunk_bytes=st.integers(64, 3000))
def test_split_then_assemble_gives_back_every_wheel_byte_for_byte(sizes, chunk_bytes):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "in").mkdir()
        wheels = _files(root / "in", sizes)
        manifest = chunks.split(wheels, root / "chunks", chunk_bytes=chunk_bytes)
        assert all(c.size <= chunk_bytes for c in manifest.chunks)
        assert sum(c.size for c in manifest.chunks) == sum(sizes)
        assert not (root / "chunks.incomplete").exists()
        for upto in range(1, len(manifest.chunks) + 1):
            report = chunks.assemble(root / "chunks", root / "out", upto=upto)
            # exactly the wheels whose last byte has arrived are ready
            expected = {w.file for w in manifest.wheels if max(manifest.chunks_of(w)) <= upto}
            assert {p.name for p in report.ready} == expected
            assert set(report.waiting) == {w.file for w in manifest.wheels} - expected
        assert report.complete
        for wheel in wheels:
            assert (root / "out" / wheel.name).read_bytes() == wheel.read_bytes()


@pytest.fixture()
def chunked(tmp_path) -> Path:
    (tmp_path / "in").mkdir()
    chunks.split(_files(tmp_path / "in", [2500, 700, 3100]), tmp_path / "chunks", chunk_bytes=2048)
    return tmp_path / "chunks"


def test_a_corrupted_chunk_is_detected_and_names_the_set_to_carry_again(chunked, tmp_path):
    path = chunked / "02" / "chunk-02.bin"
    data = bytearray(path.read_bytes())
    data[100] ^= 0xFF
    path.write_bytes(bytes(data))
    chunks.assemble(chunked, tmp_path / "out", upto=1)  # set 1 is fine
    with pytest.raises(chunks.ChunkError, match=r"chunk-02\.bin has sha256 .* corrupt; carry set 02 again"):
        chunks.assemble(chunked, tmp_path / "out", upto=2)
    assert chunks.main(["verify", "--chunks", str(chunked)]) == 1


def test_a_truncated_or_missing_chunk_set_is_detected(chunked, tmp_path):
    path = chunked / "03" / "chunk-03.bin"
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(chunks.ChunkError, match=r"truncated or corrupt; carry set 03 again"):
        chunks.assemble(chunked, tmp_path / "out")
    (chunked / "01" / "chunk-01.bin").unlink()
    with pytest.raises(chunks.ChunkError, match=r"chunk set 01 is missing"):
        chunks.assemble(chunked, tmp_path / "out", upto=2)
    with pytest.raises(chunks.ChunkError, match=r"chunk set 9 does not exist: this manifest has sets 1\.\.4"):
        chunks.assemble(chunked, tmp_path / "out", upto=9)


def test_chunk_sets_of_two_carrier_runs_are_refused(chunked, tmp_path):
    (tmp_path / "other").mkdir()
    chunks.split(_files(tmp_path / "other", [10], seed=1), tmp_path / "other_chunks", chunk_bytes=2048)
    (chunked / "02" / "manifest.json").write_text((tmp_path / "other_chunks" / "01" / "manifest.json").read_text())
    with pytest.raises(chunks.ChunkError, match="two different carrier runs"):
        chunks.assemble(chunked, tmp_path / "out")


def test_a_damaged_reassembled_wheel_is_rewritten_from_the_chunks(chunked, tmp_path):
    out = tmp_path / "out"
    chunks.assemble(chunked, out)
    wheel = out / "pkg0-1.0-py3-none-any.whl"
    good = wheel.read_bytes()
    wheel.write_bytes(b"not a wheel")
    chunks.assemble(chunked, out)
    assert wheel.read_bytes() == good


def test_split_refuses_duplicate_names_and_empty_files_and_keeps_nothing_half_written(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    dup = [*_files(tmp_path / "a", [5]), *_files(tmp_path / "b", [6])]
    with pytest.raises(ValueError, match="same file name: pkg0-1.0-py3-none-any.whl"):
        chunks.split(dup, tmp_path / "chunks")
    (tmp_path / "a" / "empty-1.0-py3-none-any.whl").write_bytes(b"")
    with pytest.raises(ValueError, match="empty file.*empty-1.0-py3-none-any.whl"):
        chunks.split(sorted((tmp_path / "a").glob("*.whl")), tmp_path / "chunks")
    assert not (tmp_path / "chunks").exists()


# ------------------------------------------------------------------------------------------- carrier
def _item(name: str, version: str, requires: list[str]) -> dict:
    return {
        "metadata": {"name": name, "version": version, "requires_dist": requires},
        "download_info": {
            "url": f"https://files.example/{name}-{version}-py3-none-any.whl",
            "archive_info": {"hashes": {"sha256": hashlib.sha256(name.encode()).hexdigest()}},
        },
    }


def _report(drop: str = "") -> dict:
    items = [
        _item("verl", "0.9.1", [
            "ray[default]>=2.41.0", "transformers!=5.6.0,<5.11,>=5.5.3", "numpy>=2.0.0", "wandb",
            'TransferQueue>=0.1.10; extra == "verl-core"', 'backport-thing; python_version < "3.12"',
            'newpy-thing; python_version >= "3.12"', 'pytest; extra == "test"',
        ]),
        _item("ray", "2.60.0", ["click", 'grpcio>=1.42; extra == "default"']),
        _item("transformers", "5.10.4", ["tokenizers<=0.23.0,>=0.22.0", "numpy>=1.17", "huggingface-hub<2.0,>=1.5.0"]),
        _item("tokenizers", "0.22.2", ["huggingface-hub<2.0,>=0.16.4"]),
        _item("huggingface_hub", "1.33.0", ["hf-xet>=1.1"]),
        _item("hf-xet", "1.8.0", []),
        _item("numpy", "2.4.6", []),
        _item("wandb", "0.31.0", ["cwevals==0.0.1b1", "click"]),
        _item("cwevals", "0.0.1b1", []),
        _item("click", "8.5.1", []),
        _item("grpcio", "1.85.3", []),
        _item("TransferQueue", "0.1.11", ["numpy"]),
        _item("newpy-thing", "1.0", []),
        _item("torch", "2.11.0", ['triton==3.6.0; platform_system == "Linux"', "typing-extensions"]),
        _item("triton", "3.6.0", []),
        _item("typing_extensions", "4.16.0", []),
    ]
    return {"install": [i for i in items if i["metadata"]["name"] != drop]}


HOST = {"torch": "2.11.0", "numpy": "2.5.2", "transformers": "5.17.0", "huggingface-hub": "1.33.0"}


def test_selection_subtracts_the_host_and_prunes_what_only_excluded_packages_need():
    selection = carrier.select(carrier.packages_of(_report()), ["verl[verl-core]==0.9.1"], host=HOST, python_version="3.12")
    assert set(selection.selected) == {"verl", "ray", "click", "grpcio", "transformers", "tokenizers", "transferqueue", "newpy-thing"}
    # torch and its requirements, and the listed packages whose version satisfies the set
    assert {"torch", "triton", "typing-extensions", "numpy", "huggingface-hub"} <= set(selection.host_provided)
    assert selection.host_provided["numpy"] == "2.5.2"
    # the host's transformers is newer than verl allows: carried, shadowing the host's
    assert selection.host_shadowed == {"transformers": "host has 5.17.0; the set needs 5.10.4"}
    # wandb is excluded; cwevals only wandb needs; hf-xet only the host's huggingface-hub needs
    assert set(selection.excluded) == {"wandb", "cwevals", "hf-xet"}
    assert selection.excluded["wandb"] == carrier.EXCLUDED["wandb"]
    # click stays: Ray needs it too; the chain of requirements says why it is there
    assert selection.via["click"] == ["verl[verl-core]==0.9.1", "ray[default]>=2.41.0", "click"]
    assert selection.via["grpcio"] == ["verl[verl-core]==0.9.1", "ray[default]>=2.41.0", "grpcio>=1.42; extra == \"default\""]
    assert "pytest" not in selection.selected  # an extra nobody asked for


def test_a_dependency_of_the_hosts_python_that_pip_did_not_resolve_is_an_error():
    with pytest.raises(carrier.CarrierError, match=r"newpy-thing.*needed on Python 3\.12 but pip did not resolve it"):
        carrier.select(carrier.packages_of(_report(drop="newpy-thing")), ["verl[verl-core]==0.9.1"], host=HOST, python_version="3.12")
    # for 3.11 the marker is false and the backport, resolved by nobody, is needed
    with pytest.raises(carrier.CarrierError, match="backport-thing"):
        carrier.select(carrier.packages_of(_report()), ["verl[verl-core]==0.9.1"], host=HOST, python_version="3.11")


def test_version_drift_between_the_two_resolutions_is_reported():
    native = carrier.packages_of(_report())
    target = carrier.packages_of({"install": [_item("hydra-core", "0.11.3", [])] + _report()["install"]})
    native["hydra-core"] = carrier.packages_of({"install": [_item("hydra-core", "1.3.8", [])]})["hydra-core"]
    assert carrier.check_agreement(native, target, ["hydra-core", "ray"]) == ["hydra-core: 1.3.8 (this interpreter) vs 0.11.3 (target)"]


def test_host_package_list_is_read_strictly(tmp_path):
    path = tmp_path / "host.txt"
    path.write_text("# comment\ntorch==2.11.0  # the host's\nHuggingFace_Hub==1.33.0\n")
    assert carrier.read_host_packages(path) == {"torch": "2.11.0", "huggingface-hub": "1.33.0"}
    path.write_text("numpy\ntorch==2.11.0\n")
    with pytest.raises(carrier.CarrierError, match=r"host.txt:1: expected name==version, got 'numpy'"):
        carrier.read_host_packages(path)
    path.write_text("numpy==2.5.2\n")
    with pytest.raises(carrier.CarrierError, match="no torch==VERSION line"):
        carrier.read_host_packages(path)
    # the shipped list parses and pins the host's torch
    assert carrier.read_host_packages(carrier.DEFAULT_HOST_PACKAGES)["torch"] == "2.11.0"


def test_platform_options_list_every_manylinux_glibc_up_to_the_hosts():
    args = carrier.platform_args("3.12", 28)
    platforms = [args[i + 1] for i, a in enumerate(args) if a == "--platform"]
    assert "manylinux_2_18_x86_64" in platforms and "manylinux_2_28_x86_64" in platforms  # nccl-cu13 is 2_18 only
    assert "manylinux_2_29_x86_64" not in platforms
    assert args[args.index("--python-version") + 1] == "3.12" and "cp312" in args


# ------------------------------------------------------------------------------------------- host install
def _wheel(folder: Path, name: str, files: dict[str, bytes]) -> Path:
    """A minimal valid pure-Python wheel."""
    dist = f"{name}-1.0.dist-info"
    files = {
        **files,
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n".encode(),
        f"{dist}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for arc, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{arc},sha256={digest},{len(data)}")
    path = folder / f"{name}-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for arc, data in files.items():
            archive.writestr(arc, data)
        archive.writestr(f"{dist}/RECORD", "\n".join([*record, f"{dist}/RECORD,,"]) + "\n")
    return path


def _host_install(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(GPU / "host_install.py"), *args], capture_output=True, text=True)


@pytest.mark.e2e
def test_host_install_stages_the_sets_then_installs_once_keeping_shared_folders(tmp_path):
    (tmp_path / "in").mkdir()
    blob = hashlib.shake_256(b"x").digest(3000)  # each wheel spans chunks
    wheels = [
        _wheel(tmp_path / "in", "alpha", {"nsdemo/alpha.py": b"VALUE = 'alpha'\n", "nsdemo/alpha.bin": blob}),
        _wheel(tmp_path / "in", "beta", {"nsdemo/beta.py": b"VALUE = 'beta'\n", "nsdemo/beta.bin": blob}),
    ]
    manifest = chunks.split(wheels, tmp_path / "chunks", chunk_bytes=2500)
    sets = len(manifest.chunks)
    assert sets >= 3
    paths = ["--chunks", str(tmp_path / "chunks"), "--wheels", str(tmp_path / "wheels"), "--site", str(tmp_path / "site"), "--no-check"]
    for number in range(1, sets):
        proc = _host_install(str(number), *paths)
        assert proc.returncode == 0, proc.stderr
        assert f"next: carry chunks/{number + 1:02d}" in proc.stdout
        assert not (tmp_path / "site").exists()  # nothing installed before the last set
    proc = _host_install(str(sets), *paths)
    assert proc.returncode == 0, proc.stderr
    assert "installed: 2 wheels" in proc.stdout
    check = subprocess.run(
        [sys.executable, "-c", "import nsdemo.alpha as a, nsdemo.beta as b; print(a.VALUE, b.VALUE)"],
        env={**os.environ, "PYTHONPATH": str(tmp_path / "site")}, capture_output=True, text=True,
    )
    assert check.stdout.split() == ["alpha", "beta"], check.stderr
    assert "already installed" in _host_install(str(sets), *paths).stdout
    # a set corrupted in transit stops the step and says which set to carry again
    path = tmp_path / "chunks" / "02" / "chunk-02.bin"
    path.write_bytes(b"\0" * path.stat().st_size)
    proc = _host_install("2", *paths)
    assert proc.returncode == 1 and "carry set 02 again" in proc.stderr


# ------------------------------------------------------------------------------------------- figures
def _result(name: str, code: int = 0) -> monitor.RunResult:
    return monitor.RunResult([], code, 1.0, 2.0, 3.0, None, Path(f"{name}.log"))


def _rehearsal_runs(tmp_path: Path, edit=None) -> dict:
    runs = {}
    for name in ("first", "resumed"):
        source = RESULTS / f"{REHEARSAL.stem}.{name}.metrics.jsonl"
        lines = [json.loads(line) for line in source.read_text().splitlines() if line.strip()]
        if edit is not None:
            lines = edit(name, lines)
        path = tmp_path / f"{name}.jsonl"
        path.write_text("".join(json.dumps(line) + "\n" for line in lines))
        runs[name] = (_result(name), path)
    return runs


def _product_schedule() -> dict[int, float]:
    """The rehearsal's schedule: the paper's product schedule from 0.2 with S = 4."""
    from recipe.guardreasoner_vl.clip_schedule import get_clip_schedule

    return {step: get_clip_schedule("product")(step, 4, eps0=0.2, floor=0.0) for step in (1, 2, 3)}


CLIPS = _product_schedule()
STEPS = {"first": [1, 2], "resumed": [3]}
SOURCES = ("ToxicChat", "SPA-VL-Eval")


def test_figures_from_the_cpu_rehearsals_metrics_match_what_verl_logged(tmp_path):
    runs = _rehearsal_runs(tmp_path)
    report = figures.grpo_report(runs, expected_clip=CLIPS, expected_steps=STEPS, val_sources=SOURCES, val_runs=["resumed"])
    assert report["ok"], report["problems"]
    assert [s["step"] for s in report["steps"]] == [1, 2, 3]
    assert report["clip_eps"] == {"1": 0.15, "2": 0.075, "3": 0.01875}
    raw = {r["step"]: r["data"] for name in runs for r in figures.load_records(runs[name][1]) if "actor/pg_loss" in r["data"]}
    for step in report["steps"]:
        metrics = raw[step["step"]]
        assert step["rollout_s"] == pytest.approx(metrics["timing_s/gen"], rel=1e-5)
        assert step["update_s"] == pytest.approx(metrics["timing_s/update_actor"], rel=1e-5)
        assert step["old_log_prob_s"] == pytest.approx(metrics["timing_s/old_log_prob"], rel=1e-5)
        # the split adds up to verl's step time
        parts = sum(v for k, v in step.items() if k in figures.PHASES or k == "other_s")
        assert parts == pytest.approx(metrics["timing_s/step"], rel=1e-4)
        assert step["rollout_tokens_per_s"] == pytest.approx(1000 / metrics["timing_per_token_ms/gen"], rel=1e-4)
        assert step["update_tokens_per_s"] == pytest.approx(1000 / metrics["timing_per_token_ms/update_actor"], rel=1e-4)
        assert step["reward_mean"] == pytest.approx(metrics["critic/score/mean"], rel=1e-5)
    assert [s["first_of_run"] for s in report["steps"]] == [True, False, True]
    assert report["warm"]["steps"] == [2]
    assert set(report["validation"]["3"]) >= {f"val-core/{s}/request_f1" for s in SOURCES}


def test_the_committed_rehearsal_json_is_what_the_figures_module_computes(tmp_path):
    committed = json.loads(REHEARSAL.read_text())
    assert committed["ok"] and committed["what"] == "grpo_resume" and committed["device"].startswith("cpu")
    runs = _rehearsal_runs(tmp_path)
    report = figures.grpo_report(runs, expected_clip=CLIPS, expected_steps=STEPS, val_sources=SOURCES, val_runs=["resumed"])
    assert report["steps"] == committed["steps"]
    assert report["clip_eps"] == committed["clip_eps"]


def _drop_step(step):
    return lambda name, lines: [line for line in lines if line["step"] != step]


def _set(step, key, value):
    def edit(name, lines):
        for line in lines:
            if line["step"] == step and key in line["data"]:
                line["data"][key] = value
        return lines

    return edit


def _remove(prefix):
    return lambda name, lines: [{**line, "data": {k: v for k, v in line["data"].items() if not k.startswith(prefix)}} for line in lines]


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (_drop_step(2), r"run first trained steps \[1\], expected \[1, 2\]"),
        (_set(3, "actor/clip_eps", 0.15), r"step 3 \(resumed\): actor/clip_eps 0\.15 != schedule 0\.01875"),
        (_remove("val-core/SPA-VL-Eval/response_f1"), r"SPA-VL-Eval/response_f1 is None"),
        (_remove("val-aux/ToxicChat/format_ok"), r"validation of ToxicChat: reward keys not logged: format_ok"),
        (_remove("val-"), r"run resumed logged no validation metrics"),
    ],
)
def test_the_checks_fail_on_what_a_broken_run_would_log(tmp_path, edit, problem):
    runs = _rehearsal_runs(tmp_path, edit)
    report = figures.grpo_report(runs, expected_clip=CLIPS, expected_steps=STEPS, val_sources=SOURCES, val_runs=["resumed"])
    assert not report["ok"]
    assert any(re.search(problem, p) for p in report["problems"]), report["problems"]


def test_a_failed_run_and_a_missing_metrics_file_are_problems(tmp_path):
    report = figures.grpo_report(
        {"first": (_result("first", code=1), tmp_path / "none.jsonl")},
        expected_clip=CLIPS, expected_steps=STEPS, val_sources=SOURCES,
    )
    assert not report["ok"]
    assert report["problems"][0].startswith("run first exited 1")
    assert "no metrics file" in report["problems"][1]
    (tmp_path / "bad.jsonl").write_text('{"step": 1, "data": {}}\nnot json\n')
    with pytest.raises(figures.MetricsError, match=r"bad\.jsonl:2: not a verl metrics line"):
        figures.load_records(tmp_path / "bad.jsonl")


def test_sft_step_times_come_from_the_arrival_of_its_metric_lines():
    from benchmarks.gpu.sft_steps import step_table

    lines = [
        (5.0, {"step": 1, "data": {"train/loss": 7.0, "train/global_tokens": 1000, "perf/max_memory_allocated_gb": 1.5}}),
        (5.1, {"step": 1, "data": {"val/loss": 7.1}}),
        (7.5, {"step": 2, "data": {"train/loss": 6.5, "train/global_tokens": 1250}}),
    ]
    rows = step_table(lines)
    assert [r["step"] for r in rows] == [1, 2]
    assert rows[0]["step_s"] is None and rows[0]["arrived_s"] == 5.0
    assert rows[1]["step_s"] == pytest.approx(2.5) and rows[1]["tokens_per_s"] == pytest.approx(500.0)


# ------------------------------------------------------------------------------------------- monitor
def test_monitor_measures_the_process_tree_and_times_watched_lines(tmp_path):
    metrics = tmp_path / "m.jsonl"
    child = (
        "import json, subprocess, sys, time\n"
        "kid = subprocess.Popen([sys.executable, '-c', 'b = bytearray(300 << 20); import time; time.sleep(2.5)'])\n"
        f"f = open({str(metrics)!r}, 'w', buffering=1)\n"
        "for step in (1, 2, 3):\n"
        "    time.sleep(0.4); f.write(json.dumps({'step': step, 'data': {}}) + '\\n'); print('step', step, flush=True)\n"
        "kid.wait()\n"
    )
    result = monitor.run([sys.executable, "-c", child], env=os.environ, cwd=tmp_path, log=tmp_path / "log.txt", watch=[metrics])
    assert result.returncode == 0
    assert result.peak_host_pss_gib * monitor.GIB > 250 << 20  # the grandchild's 300 MiB counted
    assert result.peak_host_rss_gib >= result.peak_host_pss_gib * 0.99
    times = [t for t, _ in result.lines[str(metrics)]]
    assert [r["step"] for _, r in result.lines[str(metrics)]] == [1, 2, 3]
    assert all(b - a > 0.25 for a, b in zip(times, times[1:]))
    assert "step 3" in (tmp_path / "log.txt").read_text()


# ------------------------------------------------------------------------------------------- workload and env
def test_workload_data_carry_the_pixel_budget_and_name_the_validation_sources(tmp_path):
    import pyarrow.parquet as pq

    data = workload.build_rl_data("cpu", tmp_path)
    assert data.val_sources == SOURCES
    val = pq.read_table(data.val).to_pylist()
    assert len(val) == 2 * workload.WORKLOADS["cpu"].val_rows_per_benchmark
    images = [image for row in pq.read_table(data.train).to_pylist() for image in row["images"]]
    assert images and all(image["max_pixels"] == 16 * 28 * 28 for image in images)
    with pytest.raises(ValueError, match="DEVICE must be one of cuda, cpu"):
        workload.workload("tpu")


def _sourced(site: Path) -> dict:
    proc = subprocess.run(
        ["bash", "-c", f"source {GPU / 'env.sh'}; echo \"$PYTHONPATH\"; echo \"${{VERL_USE_EXTERNAL_MODULES:-}}\""],
        env={**os.environ, "GPU_SITE": str(site), "PYTHONPATH": ""}, capture_output=True, text=True, check=True,
    )
    path, modules = proc.stdout.splitlines()
    return {"path": path.split(":"), "modules": modules}


def test_env_sh_puts_the_carried_set_first_only_when_it_is_installed(tmp_path):
    assert _sourced(tmp_path / "absent") == {"path": [str(REPO_ROOT)], "modules": ""}
    (tmp_path / "site").mkdir()
    assert _sourced(tmp_path / "site") == {"path": [str(REPO_ROOT), str(tmp_path / "site")], "modules": "recipe.guardreasoner_vl.plugin"}


def test_run_sh_lists_its_commands(tmp_path):
    proc = subprocess.run(["bash", str(GPU / "run.sh")], capture_output=True, text=True)
    assert proc.returncode == 2
    assert all(f"run.sh {c}" in proc.stderr for c in ("install N", "grpo", "sft", "smoke"))


@pytest.mark.parametrize("script", ["carrier.py", "host_install.py", "grpo_resume.py", "sft_steps.py", "smoke_vllm.py", "chunks.py", "bare_host.py"])
def test_every_script_has_help(script):
    # from another folder: --help must work from anywhere
    proc = subprocess.run([sys.executable, str(GPU / script), "--help"], capture_output=True, text=True, cwd=tempfile.gettempdir())
    assert proc.returncode == 0 and "usage:" in proc.stdout, proc.stderr


@pytest.mark.e2e  # verl in fresh interpreters
@pytest.mark.slow
def test_the_recipe_plugin_loads_through_verls_module_list_without_an_install():
    """How the bare GPU host loads it (no entry point there): entry points off, module list on."""
    code = "import verl; from verl.trainer.ppo.core_algos import POLICY_LOSS_REGISTRY as R; print('guardreasoner_dynamic_clip' in R)"
    base = {**os.environ, "VERL_USE_EXTERNAL_PLUGINS": "none", "PYTHONPATH": str(REPO_ROOT)}
    base.pop("VERL_USE_EXTERNAL_MODULES", None)
    off = subprocess.run([sys.executable, "-c", code], env=base, capture_output=True, text=True)
    on = subprocess.run(
        [sys.executable, "-c", code], env={**base, "VERL_USE_EXTERNAL_MODULES": "recipe.guardreasoner_vl.plugin"},
        capture_output=True, text=True,
    )
    assert off.stdout.split()[-1:] == ["False"], off.stderr[-2000:]
    assert on.stdout.split()[-1:] == ["True"], on.stderr[-2000:]


def test_the_checkpoint_keeps_the_optimizer_only_when_the_disk_holds_it(tmp_path, monkeypatch):
    from collections import namedtuple

    from benchmarks.gpu.grpo_resume import checkpoint_contents

    (tmp_path / "model.safetensors").write_bytes(b"\0" * 2000)  # 1,000 bf16 parameters -> 12 kB with AdamW
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr("shutil.disk_usage", lambda path: usage(10**9, 0, 20_000))
    assert checkpoint_contents(tmp_path, tmp_path) == ["model", "optimizer", "extra"]
    monkeypatch.setattr("shutil.disk_usage", lambda path: usage(10**9, 0, 10_000))
    assert checkpoint_contents(tmp_path, tmp_path) == ["model", "extra"]
    assert checkpoint_contents(tmp_path, tmp_path, "full") == ["model", "optimizer", "extra"]


# ------------------------------------------------------------------------------------------- configs
@pytest.mark.slow
def test_the_gpu_resume_runs_config_passes_the_config_check(tiny_model_dir, tmp_path):
    from benchmarks.gpu import grpo_resume

    shared = grpo_resume.run_overrides("cuda", tiny_model_dir, tmp_path / "t.parquet", tmp_path / "v.parquet", tmp_path)
    # any machine: the GPU run's model, data and packages are not here
    config = grpo_resume.checked_config([*shared, *grpo_resume.resumed_run(tmp_path / "global_step_2")], this_machine=False)
    rollout, model = config.actor_rollout_ref.rollout, config.actor_rollout_ref.model
    assert (rollout.name, config.trainer.n_gpus_per_node, config.trainer.device) == ("hf", 1, "cuda")
    assert model.override_config.attn_implementation == "sdpa" and model.use_remove_padding is False
    assert config.actor_rollout_ref.actor.policy_loss.loss_mode == "guardreasoner_dynamic_clip"
    # S is fixed at 4 for both runs (the trainer's total would be 3 for the resumed run)
    from recipe.guardreasoner_vl.clip_schedule import get_clip_schedule

    section = config.guardreasoner.clip_schedule
    schedule = get_clip_schedule(section.name)
    assert figures.scheduled_clips(config, [1, 2, 3]) == {
        s: schedule(s, 4, eps0=section.eps0, floor=section.floor) for s in (1, 2, 3)
    }


@pytest.mark.e2e  # runs the launch script's config check: verl in a fresh interpreter
@pytest.mark.slow
def test_the_vllm_smoke_config_through_run_grpo_sh_passes_the_config_check(tiny_model_dir, tmp_path, capsys):
    from benchmarks.gpu import smoke_vllm

    code = smoke_vllm.main(["--device", "cuda", "--check-only", "--model", str(tiny_model_dir), "--work", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "config ok: grpo (guardreasoner_vl_grpo)" in out
    assert "rollout vllm" in out and "clip schedule {1: " in out


@pytest.mark.e2e  # runs the launch script's config check: verl in a fresh interpreter
@pytest.mark.slow
def test_the_gpu_sft_overrides_pass_run_sft_sh_config_check(tiny_model_dir, tmp_path):
    from benchmarks.gpu.sft_steps import CUDA_OVERRIDES, STEPS

    env = {**os.environ, "CHECK_CONFIG": "1", "PYTHON": sys.executable, "GPUS_PER_NODE": "1", "TRAIN_BATCH_SIZE": "8",
           "OPTIMIZER_OFFLOAD": "False",
           "MODEL_PATH": str(tiny_model_dir), "TRAIN_FILES": str(tmp_path / "x.parquet")}
    proc = subprocess.run(
        ["bash", str(REPO_ROOT / "examples" / "sft" / "run_sft.sh"), f"trainer.total_training_steps={STEPS}",
         "checkpoint.save_contents=[model]", *CUDA_OVERRIDES],
        env=env, capture_output=True, text=True, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "config ok: sft" in proc.stdout


# ------------------------------------------------------------------------------------------- end to end (CPU backend)
def _run_script(script: str, tmp_path: Path, *args: str, timeout: int = 840) -> dict:
    out = tmp_path / "result.json"
    proc = subprocess.run(
        [sys.executable, str(GPU / script), "--device", "cpu", "--work", str(tmp_path / "work"), "--json", str(out), *args],
        capture_output=True, text=True, timeout=timeout, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    line = json.loads(proc.stdout.strip().splitlines()[-1])  # ONE JSON line, printed last
    assert line == json.loads(out.read_text())
    return line


@pytest.mark.e2e
def test_sft_steps_runs_two_steps_of_run_sft_sh_under_torchrun(tmp_path):
    report = _run_script("sft_steps.py", tmp_path)
    assert report["ok"] and [s["step"] for s in report["steps"]] == [1, 2]
    assert report["steps"][1]["step_s"] > 0 and report["steps"][1]["tokens_per_s"] > 0
    assert (tmp_path / "result.sft.metrics.jsonl").is_file()
    assert not (tmp_path / "work" / "checkpoints").exists()  # deleted after the run


@pytest.mark.e2e
@pytest.mark.slow
def test_smoke_script_runs_run_grpo_sh_and_checks_clip_reward_keys_and_f1(tmp_path):
    report = _run_script("smoke_vllm.py", tmp_path)
    assert report["ok"], report["problems"]
    assert report["rollout"] == "hf"  # DEVICE=cpu: the CPU backend's rollout stands in for vLLM
    # the clip each step used is the live config's schedule (checked by the script: report ok)
    assert set(report["clip_eps"]) == {"1", "2"} and report["clip_eps"] == pytest.approx(report["clip_eps_expected"])
    assert report["warm"]["rollout_tokens_per_s"] > 0 and report["warm"]["update_tokens_per_s"] > 0


@pytest.mark.e2e
@pytest.mark.slow
def test_grpo_resume_runs_three_steps_with_the_scheduled_clip_after_resume(tmp_path):
    report = _run_script("grpo_resume.py", tmp_path)
    assert report["ok"], report["problems"]
    assert [(s["step"], s["run"]) for s in report["steps"]] == [(1, "first"), (2, "first"), (3, "resumed")]
    assert set(report["clip_eps"]) == {"1", "2", "3"} and report["clip_eps"] == pytest.approx(report["clip_eps_expected"])
    assert report["clip_eps"]["3"] < report["clip_eps"]["2"] < report["clip_eps"]["1"]  # the resume did not restart it
    assert report["checkpoint"]["gib"] > 0 and report["checkpoint"]["save_s"] > 0
    assert report["checkpoint"]["contents"] == ["model", "optimizer", "extra"]
    for step in report["steps"]:
        assert step["rollout_s"] > 0 and step["update_s"] > 0 and step["old_log_prob_s"] > 0
    assert report["peak_host_pss_gib"] > 0.5
    assert set(report["validation"]["3"]) >= {f"val-core/{s}/request_f1" for s in SOURCES}
    assert not (tmp_path / "work" / "checkpoints").exists()
