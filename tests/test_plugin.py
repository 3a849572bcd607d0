"""The ``verl.plugins`` entry point really registers everything, and changes nothing unless selected.

verl swallows plugin import errors (debug log only), so each check runs a fresh interpreter that does
``import verl`` exactly as a verl process does, and reports what it sees as JSON. The platform choice
and the patches are process-global, so a subprocess is also the only honest way to test them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

pytest.importorskip("verl")

#: Every test here reads probes that start fresh verl interpreters.
pytestmark = pytest.mark.e2e

REPO_ROOT = Path(__file__).resolve().parents[1]

PROBE = r"""
import json, os, sys
import verl
from verl.plugin.platform import PlatformRegistry, get_platform
from verl.trainer.ppo.core_algos import POLICY_LOSS_REGISTRY
from verl.workers.rollout import base as rollout_base
from verl.workers.rollout.replica import RolloutReplicaRegistry
import verl.utils.distributed as dist_utils
import verl.utils.device as device_utils

report = {
    "plugin_loaded": "recipe.guardreasoner_vl.plugin" in sys.modules,
    "policy_losses": sorted(POLICY_LOSS_REGISTRY),
    "platforms": list(PlatformRegistry.registered_names()),
    "replicas": sorted(RolloutReplicaRegistry._registry),
    "adapters": sorted(f"{name}/{mode}" for name, mode in rollout_base._ROLLOUT_REGISTRY),
    "patched_process_group": hasattr(dist_utils.initialize_global_process_group_ray,
                                     "__guardreasoner_cpu_backend_patched__"),
    "patched_auto_set_device": hasattr(device_utils.auto_set_device, "__guardreasoner_cpu_backend_patched__"),
    "engine_device_env": os.environ.get("VERL_ENGINE_DEVICE"),
}
import torch.distributed.fsdp as torch_fsdp
report["offload_pins_memory"] = torch_fsdp.CPUOffloadPolicy(pin_memory=True).pin_memory
try:
    platform = get_platform()
    report["device"] = platform.device_name
    report["backend"] = platform.communication_backend_name()
except Exception as err:  # VERL_PLATFORM=cpu without the plugin
    report["platform_error"] = f"{type(err).__name__}: {err}"

if report.get("device") == "cpu":
    # The patched process group: plain gloo, world size 1 (verl's default would be "cpu:gloo,cpu:gloo").
    import torch.distributed as dist
    os.environ.update(RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1", MASTER_PORT=sys.argv[1])
    dist_utils.initialize_global_process_group_ray(timeout_second=60)
    report["process_group_backend"] = dist.get_backend()
    dist.destroy_process_group()
    # Memory metrics the trainer logs every step.
    module = device_utils.get_torch_device()
    report["max_memory_allocated"] = module.max_memory_allocated()
    report["device_id"] = device_utils.get_device_id()
    # trainer.device follows the platform.
    from omegaconf import OmegaConf
    config = OmegaConf.create({"trainer": {"device": "cuda"}})
    device_utils.auto_set_device(config)
    report["auto_set_device"] = config.trainer.device

print("PROBE" + json.dumps(report))
"""


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _probe(**env_changes: str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("VERL_PLATFORM", "VERL_ENGINE_DEVICE",
                                                           "VERL_USE_EXTERNAL_PLUGINS")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    for key, value in env_changes.items():
        if value is not None:
            env[key] = value
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, str(_free_port())],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("PROBE")]
    assert proc.returncode == 0 and lines, f"probe failed (rc={proc.returncode}):\n{proc.stderr[-4000:]}"
    return json.loads(lines[-1][len("PROBE"):])


@pytest.fixture(scope="module")
def probes() -> dict[str, dict]:
    """Fresh interpreters, run in parallel: stock verl, verl + plugin, verl + plugin + cpu platform,
    and the cpu platform asked for while plugins are disabled."""
    runs = {
        "stock": {"VERL_USE_EXTERNAL_PLUGINS": "none"},
        "plugin": {},
        "cpu": {"VERL_PLATFORM": "cpu"},
        "cpu_without_plugin": {"VERL_PLATFORM": "cpu", "VERL_USE_EXTERNAL_PLUGINS": "none"},
    }
    with ThreadPoolExecutor(max_workers=len(runs)) as pool:
        futures = {name: pool.submit(_probe, **env) for name, env in runs.items()}
        return {name: future.result() for name, future in futures.items()}


def test_plugin_is_loaded_by_import_verl(probes):
    assert probes["plugin"]["plugin_loaded"]
    assert not probes["stock"]["plugin_loaded"]


def test_policy_loss_is_registered(probes):
    assert "guardreasoner_dynamic_clip" in probes["plugin"]["policy_losses"]
    assert "guardreasoner_dynamic_clip" not in probes["stock"]["policy_losses"]


def test_cpu_platform_and_hf_rollout_are_registered(probes):
    plugged = probes["plugin"]
    assert "cpu" in plugged["platforms"]
    assert "hf" in plugged["replicas"]
    assert "hf/async" in plugged["adapters"]
    stock = probes["stock"]
    assert "cpu" not in stock["platforms"] and "hf" not in stock["replicas"]


def test_registration_alone_changes_nothing(probes):
    """Without VERL_PLATFORM=cpu the device is what stock verl picks and no patch is applied."""
    stock, plugged = probes["stock"], probes["plugin"]
    assert plugged["device"] == stock["device"]
    assert plugged["backend"] == stock["backend"]
    assert plugged["device"] != "cpu"
    assert not plugged["patched_process_group"] and not plugged["patched_auto_set_device"]
    assert plugged["engine_device_env"] is None
    assert plugged["offload_pins_memory"] is True
    # The stock policy losses are all still there.
    assert set(stock["policy_losses"]) <= set(plugged["policy_losses"])


def test_verl_platform_cpu_activates_the_backend(probes):
    cpu = probes["cpu"]
    assert cpu["device"] == "cpu"
    assert cpu["backend"] == "gloo"
    assert cpu["patched_process_group"] and cpu["patched_auto_set_device"]
    assert cpu["process_group_backend"] == "gloo"
    assert cpu["offload_pins_memory"] is False  # pinned host memory needs an accelerator driver
    assert cpu["engine_device_env"] == "cuda"  # verl's own knob: the FSDP engines registered for cuda
    assert cpu["device_id"] == "cpu"  # not 0, which torch would read as cuda:0
    assert cpu["max_memory_allocated"] > 10 * 2**20  # peak RSS of a process that imported torch
    assert cpu["auto_set_device"] == "cpu"


def test_verl_platform_cpu_without_the_plugin_fails_loudly(probes):
    report = probes["cpu_without_plugin"]
    assert "Unknown platform 'cpu'" in report["platform_error"]
