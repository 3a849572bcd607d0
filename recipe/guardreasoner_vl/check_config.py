"""Compose a recipe's Hydra config with overrides and run verl's own config validation, on CPU.

A typo in an override, a missing ``???`` value or a batch size that does not divide by the GPU count
otherwise surfaces minutes into a multi-node launch (after Ray, the model load, the dataset scan). This
checker composes exactly what the entry point would compose and runs the checks its ``main`` runs
before any work, in seconds, without a GPU::

    guardreasoner-vl check-config sft data.train_files=x.parquet trainer.n_gpus_per_node=8
    guardreasoner-vl check-config grpo data.train_files=... data.val_files=...

``ENTRY`` is ``sft`` or ``grpo`` (or the entry module, ``recipe.guardreasoner_vl.main_sft`` /
``recipe.guardreasoner_vl.main_grpo``); options (``--config-name NAME`` for another config of the
folder, e.g. the Eco preset, ``--print-config``) go before it. The launch scripts call it with their own overrides when
``CHECK_CONFIG=1``, which is how ``examples/pipeline.sh`` validates every launch in ``DRY_RUN=1``.

What is checked:

- both: composition (unknown keys, bad override syntax, missing defaults), no ``???`` left, every
  interpolation resolves;
- ``sft``: what ``SFTTrainer._build_config`` instantiates (engine, optim, checkpoint, profiler
  dataclasses), the model config when ``model.path`` is a local folder (tokenizer, processor, HF config),
  and the trainer's own preconditions (batch divisibility, token budget, profiler interval, periodic
  validation without a validation set, which crashes verl's loop);
- ``grpo``: ``verl.utils.config.validate_config`` exactly as ``verl.trainer.main_ppo.main`` calls it, the
  algorithm and rollout dataclasses, the custom reward function (loaded as verl's reward loop loads
  it) and the recipe's ``guardreasoner:`` section (``recipe_config.load_guardreasoner_config``, the
  check ``main_grpo`` runs before Ray starts).

What cannot be checked before the data and model exist (a parquet's columns, a hub model) is reported
as skipped, never silently passed.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

from omegaconf import DictConfig, OmegaConf

#: Folder of this recipe's Hydra configs.
CONFIG_DIR = Path(__file__).resolve().parent / "config"


class ConfigCheckError(ValueError):
    """The config does not compose or does not validate; the message says which entry and why."""


@dataclass
class CheckReport:
    """What a check covered: the composed config, the checks that passed and the ones skipped (with why)."""

    entry: str
    config_name: str
    config: DictConfig
    passed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line for logs: ``config ok: sft (guardreasoner_vl_sft): ...``."""
        line = f"config ok: {self.entry} ({self.config_name}): {', '.join(self.passed)}"
        if self.skipped:
            line += f"; skipped: {'; '.join(self.skipped)}"
        return line


def compose(config_name: str, overrides: Sequence[str] = ()) -> DictConfig:
    """Compose ``config_name`` from :data:`CONFIG_DIR` with Hydra command-line ``overrides``."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    if not (CONFIG_DIR / f"{config_name}.yaml").is_file():
        raise ConfigCheckError(f"no config {config_name}.yaml in {CONFIG_DIR}")
    try:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None, job_name="check_config"):
            return hydra_compose(config_name=config_name, overrides=list(overrides))
    except (HydraException, OmegaConfBaseException) as err:
        raise ConfigCheckError(f"{config_name} does not compose: {err}") from err


def _in_disabled_section(config: DictConfig, key: str) -> bool:
    """True if an enclosing section of ``key`` says ``enable: False`` (verl never reads it then).

    verl's own ``ppo_trainer`` leaves ``reward.reward_model.rollout.name: ???`` for a reward model
    that is off by default; a missing value there is not an error.
    """
    parts = key.split(".")
    for depth in range(len(parts) - 1, 0, -1):
        section = OmegaConf.select(config, ".".join(parts[:depth]))
        if isinstance(section, DictConfig) and section.get("enable", None) is False:
            return True
    return False


def _check_complete(report: CheckReport) -> None:
    """No ``???`` left where it will be read and every ``${...}`` resolves (what verl's first access trips on)."""
    from omegaconf.errors import OmegaConfBaseException

    missing = sorted(k for k in OmegaConf.missing_keys(report.config) if not _in_disabled_section(report.config, k))
    if missing:
        raise ConfigCheckError(f"{report.config_name}: required values not set: {', '.join(missing)}")
    try:
        OmegaConf.to_container(report.config, resolve=True, throw_on_missing=False)
    except OmegaConfBaseException as err:
        raise ConfigCheckError(f"{report.config_name}: interpolation does not resolve: {err}") from err
    report.passed.append("composed")


def _instantiate(report: CheckReport, key: str) -> None:
    """Build the dataclass behind ``key`` (its ``__post_init__`` holds verl's value checks)."""
    from verl.utils.config import omega_conf_to_dataclass

    section = OmegaConf.select(report.config, key)
    if section is None:
        raise ConfigCheckError(f"{report.config_name}: section {key} is missing")
    try:
        omega_conf_to_dataclass(section)
    except Exception as err:  # verl raises AssertionError, ValueError, TypeError, Hydra errors...
        raise ConfigCheckError(f"{report.config_name}: {key} is invalid: {_root_cause(err)}") from err
    report.passed.append(key)


def _root_cause(err: BaseException) -> str:
    """Hydra wraps the dataclass's own error; show the innermost one, with its source line if it is a bare assert."""
    import traceback

    while err.__cause__ is not None:
        err = err.__cause__
    message = str(err).strip()
    if not message and err.__traceback__ is not None:
        frame = traceback.extract_tb(err.__traceback__)[-1]
        message = f"{Path(frame.filename).name}:{frame.lineno}: {frame.line}"
    return f"{type(err).__name__}: {message}"


def _is_local_dir(path: Optional[str]) -> bool:
    return bool(path) and Path(str(path)).expanduser().is_dir()


def _sft_trainer_problems(cfg: DictConfig) -> list[str]:
    """Preconditions ``verl.trainer.sft_trainer.SFTTrainer`` asserts (or fails on) only once it runs."""
    problems: list[str] = []
    data, trainer = cfg.data, cfg.trainer

    interval = list(trainer.profile_interval)
    if len(interval) != 2 or interval[1] < interval[0] or (interval[0] < 0 <= interval[1]):
        problems.append(
            f"trainer.profile_interval must be [start, end] with end >= start, got {trainer.profile_interval}"
        )

    if data.pad_mode not in ("right", "no_padding"):
        problems.append(f"data.pad_mode must be right or no_padding, got {data.pad_mode!r}")
    if data.truncation not in ("error", "left", "right"):
        problems.append(f"data.truncation must be error, left or right, got {data.truncation!r}")

    world = int(trainer.nnodes) * int(trainer.n_gpus_per_node)
    if world < 1 or data.train_batch_size % world:
        problems.append(
            f"data.train_batch_size={data.train_batch_size} must divide by trainer.nnodes x trainer.n_gpus_per_node"
            f" = {world} (each rank takes train_batch_size // world samples; a remainder is silently dropped)"
        )
    if data.use_dynamic_bsz and data.max_token_len_per_gpu < data.max_length:
        problems.append(
            f"data.max_token_len_per_gpu={data.max_token_len_per_gpu} < data.max_length={data.max_length}:"
            " a full-length sample would not fit one micro-batch"
        )

    for key in ("save_freq", "test_freq"):
        value = trainer[key]
        if value != "after_each_epoch" and not isinstance(value, int):
            problems.append(f"trainer.{key} must be an integer or after_each_epoch, got {value!r}")
    test_freq = trainer.test_freq
    periodic_val = test_freq == "after_each_epoch" or (isinstance(test_freq, int) and test_freq > 0)
    if periodic_val and not data.val_files:
        problems.append(
            "trainer.test_freq asks for periodic validation but data.val_files is null"
            " (verl's SFT loop then iterates a missing val dataloader and crashes)"
        )
    if int(trainer.total_epochs) < 1 and trainer.total_training_steps is None:
        problems.append(f"trainer.total_epochs must be >= 1, got {trainer.total_epochs}")
    return problems


def validate_sft(report: CheckReport) -> None:
    """The checks ``verl.trainer.sft_trainer`` would run first, minus reading data."""
    _check_complete(report)
    if not report.config.data.train_files:
        raise ConfigCheckError(f"{report.config_name}: data.train_files is not set (the R-SFT parquet from build-sft)")
    problems = _sft_trainer_problems(report.config)
    if problems:
        raise ConfigCheckError(f"{report.config_name}: " + "; ".join(problems))
    report.passed.append("trainer preconditions")
    # SFTTrainer._build_config builds exactly these four (and the model, below).
    for key in ("engine", "optim", "checkpoint", "profiler"):
        _instantiate(report, key)
    custom = report.config.data.get("custom_cls") or {}
    if custom.get("path"):
        from verl.utils.import_utils import load_extern_object

        try:
            load_extern_object(custom.path, custom.name)
        except Exception as err:
            raise ConfigCheckError(
                f"{report.config_name}: data.custom_cls {custom.path}:{custom.name} does not load: {_root_cause(err)}"
            ) from err
        report.passed.append("data.custom_cls")
    path = report.config.model.path
    if _is_local_dir(path):
        _instantiate(report, "model")
    else:
        report.skipped.append(f"model (model.path={path} is not a local folder yet)")
    report.skipped.append("data files (read by the trainer)")


def validate_grpo(report: CheckReport) -> None:
    """``verl.trainer.main_ppo.main``'s ``validate_config`` plus the dataclasses its workers build."""
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config

    cfg = report.config
    _check_complete(report)
    try:
        with warnings.catch_warnings():
            # GRPO has no critic by design; verl warns about it on every call.
            warnings.filterwarnings("ignore", message="Disabled critic", category=UserWarning)
            validate_config(config=cfg, use_reference_policy=need_reference_policy(cfg), use_critic=need_critic(cfg))
    except Exception as err:  # verl uses assert and ValueError
        raise ConfigCheckError(f"{report.config_name}: verl validate_config failed: {_root_cause(err)}") from err
    report.passed.append("verl validate_config")
    for key in ("algorithm", "actor_rollout_ref.rollout"):
        _instantiate(report, key)
    # verl's reward loop loads the function only inside a Ray worker; a wrong path surfaces late there.
    from verl.trainer.ppo.reward import get_custom_reward_fn

    fn_cfg = OmegaConf.select(cfg, "reward.custom_reward_function") or {}
    if fn_cfg.get("path"):
        try:
            get_custom_reward_fn(cfg)
        except Exception as err:
            raise ConfigCheckError(
                f"{report.config_name}: reward function {fn_cfg.path}:{fn_cfg.get('name')} does not load: "
                f"{_root_cause(err)}"
            ) from err
        report.passed.append("reward function")
    # The recipe's own start-up check (main_grpo.run calls it before Ray starts).
    from recipe.guardreasoner_vl.recipe_config import SECTION, load_guardreasoner_config

    try:
        load_guardreasoner_config(cfg)
    except Exception as err:
        raise ConfigCheckError(f"{report.config_name}: {SECTION} section is invalid: {_root_cause(err)}") from err
    report.passed.append(SECTION)
    report.skipped.append("model and data files (loaded by the workers)")


@dataclass(frozen=True)
class Entry:
    """A launchable recipe entry point: its config and its validation."""

    config_name: str
    validate: Callable[[CheckReport], None]


#: Entry name -> what to compose and how to validate it.
ENTRIES: dict[str, Entry] = {
    "sft": Entry("guardreasoner_vl_sft", validate_sft),
    "grpo": Entry("guardreasoner_vl_grpo", validate_grpo),
}

#: Entry modules accepted in place of the entry name.
ALIASES: dict[str, str] = {
    "recipe.guardreasoner_vl.main_sft": "sft",
    "recipe.guardreasoner_vl.main_grpo": "grpo",
}


def check(entry: str, overrides: Sequence[str] = (), *, config_name: Optional[str] = None) -> CheckReport:
    """Compose ``entry``'s config (or ``config_name``, e.g. the Eco preset) with ``overrides`` and validate it.

    Raises :class:`ConfigCheckError` naming the config and the first failed check.
    """
    name = ALIASES.get(entry, entry)
    if name not in ENTRIES:
        raise ConfigCheckError(f"unknown entry {entry!r}; choose from {', '.join(sorted(ENTRIES) + sorted(ALIASES))}")
    spec = ENTRIES[name]
    config_name = config_name or spec.config_name
    report = CheckReport(entry=name, config_name=config_name, config=compose(config_name, overrides))
    spec.validate(report)
    return report
