# Path helpers sourced by the launch scripts: make local paths absolute before they reach Ray or torchrun.
#
# On a cluster started with `ray start` only the job's driver runs in the launch folder; every worker
# resolves a relative path in its own working folder, on its own disk. A relative checkpoint folder is
# then written node-locally and resume silently starts at step 0. So every local path is made absolute
# here, against the folder the script is started from. Left as given: absolute paths, remote URLs
# (hdfs://, s3://, ...), null, and (abs_model_path only) a hub id such as Qwen/Qwen2.5-VL-3B-Instruct that
# is not a local folder (write ./org/name for a local folder of that shape that does not exist yet).
# Sourced by scripts that already run with these options; set here too so the file obeys the same rule.
set -euo pipefail

# abs_path PATH: PATH made absolute against the current folder (no symlink resolution, no need to exist).
abs_path() {
  local path=$1
  case "${path}" in
    "" | null | /* | *://*) printf '%s' "${path}" ;;
    "~" | "~/"*) printf '%s' "${HOME}${path#\~}" ;;
    *) realpath -m -s -- "${path}" ;;
  esac
}

# abs_path_list VALUE: a path, or a Hydra list [a,b,...] of paths, with each path made absolute.
abs_path_list() {
  local value=$1 item out=()
  if [[ "${value}" == \[*\] ]]; then
    local inner=${value:1:${#value}-2}
    local items
    IFS=, read -r -a items <<<"${inner}"
    for item in "${items[@]}"; do
      item=${item#"${item%%[![:space:]]*}"}
      item=${item%"${item##*[![:space:]]}"}
      out+=("$(abs_path "${item}")")
    done
    local IFS=,
    printf '[%s]' "${out[*]}"
  else
    abs_path "${value}"
  fi
}

# abs_model_path PATH: like abs_path, but a hub id (org/name, not a local path) stays as it is.
abs_model_path() {
  local path=$1
  if [[ "${path}" =~ ^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9_.-]+$ && ! -e "${path}" ]]; then
    printf '%s' "${path}"
  else
    abs_path "${path}"
  fi
}
