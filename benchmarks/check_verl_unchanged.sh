#!/usr/bin/env bash
# verl's own CPU unit tests must give the same results with and without this project's plugin.
#
# The verl wheel ships its tests as a top-level `tests` package in site-packages. This script runs a
# representative subset of its `*_on_cpu.py` files (algorithms, losses, metrics, protocol, configs,
# multimodal position ids, checkpoint-engine bookkeeping, worker decorators) twice:
#   1. VERL_USE_EXTERNAL_PLUGINS=none  (stock verl: no entry point is loaded)
#   2. default                         (this project's `verl.plugins` entry point is loaded)
# and compares the per-test outcomes. Exit 0 when they are identical; the JSON summary lists counts.
# VERL_PLATFORM is unset for both runs: the CPU backend must be inert unless selected.
#
# Usage: benchmarks/check_verl_unchanged.sh [OUT_DIR]      (default: ./runs/check_verl_unchanged)
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-${REPO_ROOT}/.venv/bin/python}"
OUT_DIR="${1:-${REPO_ROOT}/runs/check_verl_unchanged}"
PER_TEST_TIMEOUT="${PER_TEST_TIMEOUT:-300}"

SITE="$("${PYTHON}" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
TESTS=(
  tests/test_protocol_on_cpu.py
  tests/test_base_config_on_cpu.py
  tests/trainer/test_constants_ppo_on_cpu.py
  tests/trainer/ppo/test_core_algos_on_cpu.py
  tests/trainer/ppo/test_dynamic_policy_losses_on_cpu.py
  tests/trainer/ppo/test_loss_aggregation_on_cpu.py
  tests/trainer/ppo/test_metric_utils_on_cpu.py
  tests/experimental/agent_loop/test_multimodal_position_ids_on_cpu.py
  tests/checkpoint_engine/test_global_steps_on_cpu.py
  tests/single_controller/test_decorator_on_cpu.py
)

mkdir -p "${OUT_DIR}"
WORK="$(mktemp -d)"
trap 'rm -rf "${WORK}"' EXIT
# Run from an empty folder with an empty ini: neither this repo's pytest.ini nor its `tests/` may
# shadow verl's `tests` package.
: > "${WORK}/pytest.ini"

run_suite() {  # $1 = label, $2 = VERL_USE_EXTERNAL_PLUGINS value ("" = unset)
  local label="$1" plugins="$2"
  local args=()
  for t in "${TESTS[@]}"; do args+=("${SITE}/${t}"); done
  (
    cd "${WORK}"
    unset VERL_PLATFORM VERL_ENGINE_DEVICE
    if [[ -n "${plugins}" ]]; then export VERL_USE_EXTERNAL_PLUGINS="${plugins}"; else unset VERL_USE_EXTERNAL_PLUGINS; fi
    "${PYTHON}" -m pytest -c "${WORK}/pytest.ini" --rootdir "${SITE}" -q -p no:cacheprovider \
      --timeout "${PER_TEST_TIMEOUT}" --junitxml "${OUT_DIR}/${label}.xml" "${args[@]}" \
      > "${OUT_DIR}/${label}.log" 2>&1 || true
  )
  tail -n 1 "${OUT_DIR}/${label}.log"
}

echo "== stock verl (VERL_USE_EXTERNAL_PLUGINS=none)"
run_suite without_plugin none
echo "== with the guardreasoner_vl plugin"
run_suite with_plugin ""

"${PYTHON}" - "${OUT_DIR}" <<'PY'
import json, platform, sys, xml.etree.ElementTree as ET
from importlib.metadata import version
from pathlib import Path

out = Path(sys.argv[1])

def outcomes(label):
    result = {}
    for case in ET.parse(out / f"{label}.xml").iter("testcase"):
        name = f"{case.get('classname')}::{case.get('name')}"
        kinds = {child.tag for child in case}
        result[name] = "failed" if kinds & {"failure", "error"} else "skipped" if "skipped" in kinds else "passed"
    return result

stock, plugged = outcomes("without_plugin"), outcomes("with_plugin")
def counts(d):
    return {k: sum(1 for v in d.values() if v == k) for k in ("passed", "failed", "skipped")}
diff = sorted(n for n in set(stock) | set(plugged) if stock.get(n) != plugged.get(n))
summary = {
    "without_plugin": counts(stock), "with_plugin": counts(plugged), "differences": diff,
    "tests": len(stock), "versions": {p: version(p) for p in ("verl", "torch", "transformers", "ray")},
    "python": platform.python_version(), "device": "cpu",
}
(out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
print(json.dumps(summary, indent=2))
sys.exit(1 if diff else 0)
PY
