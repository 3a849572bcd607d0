"""Validate a recipe config before anything is allocated: ``check-config`` and the entry points share it.

A typo in an override, a missing ``???`` value, a batch that does not divide over the GPUs or a model
folder that is not there otherwise surfaces minutes into a multi-node launch (after Ray, the model
load, the first rollout). :func:`validate` runs, on the driver and in seconds, the checks verl's entry
point runs plus the ones verl only makes later at run time; ``main_grpo`` and ``main_sft`` call it
before any GPU is touched, and ``guardreasoner-vl check-config`` (``cli/check_config.py``) composes a
config exactly as the entry point would and calls the same function::

    guardreasoner-vl check-config sft data.train_files=x.parquet trainer.n_gpus_per_node=8
    guardreasoner-vl check-config grpo data.train_files=... data.val_files=...
    guardreasoner-vl check-config --this-machine --host-memory-gib 1024 grpo ...

``ENTRY`` is ``sft`` or ``grpo`` (or the entry module, ``recipe.guardreasoner_vl.main_sft`` /
``recipe.guardreasoner_vl.main_grpo``); options (``--config-name NAME`` for another config of the
folder, e.g. the Eco preset, ``--print-config``, ``--this-machine``, ``--host-memory-gib``) go before it.
The launch scripts call it with their own overrides when ``CHECK_CONFIG=1`` (the config, on any
machine; how ``examples/pipeline.sh`` validates every launch in ``DRY_RUN=1``) or ``CHECK_CONFIG=full``
(also this machine, as the entry point does).

What is checked:

- both: composition (unknown keys, bad override syntax, missing defaults), no ``???`` left, every
  interpolation resolves; relative paths in a multi-node run (each node would resolve them on its own
  disk: checkpoints written where resume never looks);
- ``sft``: what ``SFTTrainer._build_config`` instantiates (engine, optim, checkpoint, profiler
  dataclasses), the model config when ``model.path`` is a local folder (tokenizer, processor, HF config),
  and the trainer's own preconditions (batch divisibility, token budget, profiler interval, periodic
  validation without a validation set, which crashes verl's loop);
- ``grpo``: ``verl.utils.config.validate_config`` exactly as ``verl.trainer.main_ppo.main`` calls it,
  ``trainer.use_v1``, the algorithm and rollout dataclasses, the checks verl makes only at run time
  (:mod:`recipe.guardreasoner_vl.launch_checks`: mini-batch vs data-parallel size under dynamic batch
  size, token budget vs the longest sequence, rollout tensor parallel vs GPUs per node), the reward
  manager and the custom reward function (resolved and loaded as verl's reward loop does) and the
  recipe's ``guardreasoner:`` section; with a host memory given, a warning when a step's
  TransferQueue payload (:mod:`recipe.guardreasoner_vl.host_memory`) exceeds it;
- this machine (``this_machine=True``: the entry points, ``--this-machine``): the model folder exists, is
  readable and holds a config and weights; the data files exist and are readable; flash-attn is
  installed where the config needs it (CUDA with ``flash_attention_2`` or padding removal) and vLLM
  where the rollout is ``vllm``. Without it, what is absent is reported as skipped (the data and the
  model of a planned pipeline do not exist yet) and what is present is still checked.

Every problem found is reported at once, one per line, in :class:`ConfigCheckError`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from omegaconf import DictConfig, OmegaConf

from recipe.guardreasoner_vl import host_memory, launch_checks, machine_checks

#: Folder of this recipe's Hydra configs.
CONFIG_DIR = Path(__file__).resolve().parent / "config"


class ConfigCheckError(ValueError):
    """The config does not compose or does not validate; the message names the config and every problem."""


@dataclass
class CheckReport:
    """What a check covered: the config, the checks that passed, the ones skipped (with why) and warnings."""

    entry: str
    config_name: str
    config: DictConfig
    passed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line for logs: ``config ok: sft (guardreasoner_vl_sft): ...``."""
        line = f"config ok: {self.entry} ({self.config_name}): {', '.join(self.passed)}"
        if self.skipped:
            line += f"; skipped: {'; '.join(self.skipped)}"
        return line

    def check(self, name: str, problems: Sequence[str]) -> None:
        """Record ``name`` as passed, or its problems."""
        if problems:
            self.problems.extend(problems)
        else:
            self.passed.append(name)

    def raise_problems(self) -> None:
        """Raise :class:`ConfigCheckError` listing every problem found so far (none: return)."""
        if len(self.problems) == 1:
            raise ConfigCheckError(f"{self.config_name}: {self.problems[0]}")
        if self.problems:
            lines = "\n".join(f"  - {p}" for p in self.problems)
            raise ConfigCheckError(f"{self.config_name}: {len(self.problems)} problems:\n{lines}")


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
    """No ``???`` left where it will be read and every ``${...}`` resolves (what verl's first access trips on).

    Raises at once: nothing else can be checked on an incomplete config.
    """
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
        report.problems.append(f"section {key} is missing")
        return
    try:
        omega_conf_to_dataclass(section)
    except Exception as err:  # verl raises AssertionError, ValueError, TypeError, Hydra errors...
        report.problems.append(f"{key} is invalid: {_root_cause(err)}")
        return
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


def validate_sft(report: CheckReport, *, this_machine: bool = False, host_memory_gib: Optional[float] = None) -> None:
    """The checks ``verl.trainer.sft_trainer`` would run first, plus this machine's files and packages.

    ``host_memory_gib`` is accepted for a uniform signature and unused: the SFT trainer keeps no
    rollout samples on the host.
    """
    if not report.config.data.train_files:
        report.problems.append("data.train_files is not set (the R-SFT parquet from build-sft)")
    report.check("trainer preconditions", _sft_trainer_problems(report.config))
    # SFTTrainer._build_config builds exactly these four (and the model, below).
    for key in ("engine", "optim", "checkpoint", "profiler"):
        _instantiate(report, key)
    custom = report.config.data.get("custom_cls") or {}
    if custom.get("path"):
        from verl.utils.import_utils import load_extern_object

        try:
            load_extern_object(custom.path, custom.name)
        except Exception as err:
            report.problems.append(f"data.custom_cls {custom.path}:{custom.name} does not load: {_root_cause(err)}")
        else:
            report.passed.append("data.custom_cls")
    machine_checks.check_this_machine(report, model_key="model", this_machine=this_machine)
    if "model folder" in report.passed:
        _instantiate(report, "model")


def validate_grpo(report: CheckReport, *, this_machine: bool = False, host_memory_gib: Optional[float] = None) -> None:
    """verl's ``main_ppo`` checks, the run-time checks it makes later, the reward, the recipe section."""
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config

    cfg = report.config
    with warnings.catch_warnings():
        # GRPO has no critic by design; verl warns about it on every call.
        warnings.filterwarnings("ignore", message="Disabled critic", category=UserWarning)
        use_critic, use_reference = need_critic(cfg), need_reference_policy(cfg)
    if not cfg.trainer.get("use_v1", False):
        report.problems.append("the GuardReasoner trainer extends verl's v1 trainer: set trainer.use_v1=True")
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Disabled critic", category=UserWarning)
            validate_config(config=cfg, use_reference_policy=use_reference, use_critic=use_critic)
    except Exception as err:  # verl uses assert and ValueError
        report.problems.append(f"verl validate_config failed: {_root_cause(err)}")
    else:
        report.passed.append("verl validate_config")
    for key in ("algorithm", "actor_rollout_ref.rollout"):
        _instantiate(report, key)
    report.check("batch layout", launch_checks.grpo_batch_problems(cfg, use_critic=use_critic))
    report.warnings.extend(launch_checks.batch_padding_warnings(cfg))
    report.check("rollout layout", launch_checks.rollout_layout_problems(cfg))
    _check_reward(report)
    # The recipe's own start-up check (GuardReasonerTrainerMixin runs it again inside Ray).
    from recipe.guardreasoner_vl.recipe_config import SECTION, load_guardreasoner_config

    try:
        load_guardreasoner_config(cfg)
    except Exception as err:
        report.problems.append(f"{SECTION} section is invalid: {_root_cause(err)}")
    else:
        report.passed.append(SECTION)
    machine_checks.check_this_machine(report, model_key="actor_rollout_ref.model", this_machine=this_machine)
    if host_memory_gib is not None:
        _check_host_memory(report, host_memory_gib)


def _check_reward(report: CheckReport) -> None:
    """Resolve the reward manager and load the custom reward function as verl's reward loop will (inside Ray)."""
    from verl.trainer.ppo.reward import get_custom_reward_fn, resolve_reward_manager_cls

    cfg = report.config
    manager = OmegaConf.select(cfg, "reward.reward_manager") or {}
    try:
        resolve_reward_manager_cls(cfg)
    except Exception as err:
        from verl.experimental.reward_loop.reward_manager.registry import REWARD_MANAGER

        known = ", ".join(sorted(REWARD_MANAGER))
        report.problems.append(
            f"reward manager {manager.get('name')!r} (source {manager.get('source')}) does not resolve:"
            f" {_root_cause(err)}; registered: {known}"
        )
    else:
        report.passed.append("reward manager")
    fn_cfg = OmegaConf.select(cfg, "reward.custom_reward_function") or {}
    if fn_cfg.get("path"):
        try:
            get_custom_reward_fn(cfg)
        except Exception as err:
            report.problems.append(
                f"reward function {fn_cfg.path}:{fn_cfg.get('name')} does not load: {_root_cause(err)}"
            )
        else:
            report.passed.append("reward function")


def _check_host_memory(report: CheckReport, host_memory_gib: float) -> None:
    """Warn when a step's TransferQueue payload on the busiest node exceeds the host memory given."""
    images, max_pixels, source = host_memory.data_image_stats(OmegaConf.select(report.config, "data.train_files"))
    estimate = host_memory.estimate_step(report.config, images_per_sample=images, max_pixels=max_pixels, source=source)
    if estimate.node_bytes > host_memory_gib * 2**30:
        report.warnings.append(
            f"{estimate.summary()}: more than the {host_memory_gib:g} GiB of host memory per node given. Lower"
            " data.train_batch_size or actor_rollout_ref.rollout.n, rebuild the RL data with a smaller --max-pixels,"
            " or add nodes (TransferQueue's storage units are spread over them)"
        )
    else:
        report.passed.append("host memory")


@dataclass(frozen=True)
class Entry:
    """A launchable recipe entry point: its config and its validation."""

    config_name: str
    validate: Callable[..., None]


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


def _entry(entry: str) -> str:
    name = ALIASES.get(entry, entry)
    if name not in ENTRIES:
        raise ConfigCheckError(f"unknown entry {entry!r}; choose from {', '.join(sorted(ENTRIES) + sorted(ALIASES))}")
    return name


def validate(
    config: Any,
    entry: str,
    *,
    config_name: Optional[str] = None,
    this_machine: bool = True,
    host_memory_gib: Optional[float] = None,
) -> CheckReport:
    """Check ``config`` (a composed or Hydra-given config) for ``entry`` (``sft`` or ``grpo``) before a launch.

    The one validation of the recipe: the entry points call it with ``this_machine=True`` (the model,
    the data and the packages must be here), ``check-config`` with what it is told. Returns the report
    (passed, skipped, warnings); raises :class:`ConfigCheckError` listing every problem.
    """
    name = _entry(entry)
    report = CheckReport(entry=name, config_name=config_name or ENTRIES[name].config_name, config=config)
    _check_complete(report)
    ENTRIES[name].validate(report, this_machine=this_machine, host_memory_gib=host_memory_gib)
    report.raise_problems()
    return report


def check(
    entry: str,
    overrides: Sequence[str] = (),
    *,
    config_name: Optional[str] = None,
    this_machine: bool = False,
    host_memory_gib: Optional[float] = None,
) -> CheckReport:
    """Compose ``entry``'s config (or ``config_name``, e.g. the Eco preset) with ``overrides`` and :func:`validate` it.

    By default only the config is checked (any machine); ``this_machine=True`` checks it as the entry point will.
    """
    name = _entry(entry)
    config_name = config_name or ENTRIES[name].config_name
    return validate(
        compose(config_name, overrides),
        name,
        config_name=config_name,
        this_machine=this_machine,
        host_memory_gib=host_memory_gib,
    )
