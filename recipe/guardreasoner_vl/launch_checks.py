"""What verl 0.9.1 refuses only once a run is under way, checked on the composed config in milliseconds.

verl's ``validate_config`` skips its batch checks when ``use_dynamic_bsz`` is on (the recipe's
default), and several layout rules are bare ``assert`` statements deep in the workers. Each function
below mirrors one of those run-time checks, names the verl code it mirrors, and returns the problems
it finds as sentences that say the fix (an empty list = fine). They read only the config: no GPU, no
Ray, no files. :mod:`recipe.guardreasoner_vl.check_config` runs them for ``check-config`` and for the
entry points, before any GPU is allocated.

Mirrored (verl 0.9.1):

- after the first rollout, ``TrainingWorker.train_mini_batch`` asserts that the actor's global
  mini-batch (``ppo_mini_batch_size x rollout.n`` sequences) divides by its data-parallel size
  (``workers/engine_workers.py``); e.g. 256 x 16 = 4096 sequences on 3 nodes x 8 GPUs fails there;
- ``PPOTrainer.step`` and ``_next_train_batch`` assert ``train_batch_size`` divides by
  ``parameter_sync_step`` and each trigger's prompts by ``gen_batch_size``
  (``trainer/ppo/v1/trainer_base.py``);
- dynamic batching asserts that one full sequence (prompt + response) fits a micro-batch's token
  budget (``utils/seqlen_balancing.py``);
- the hybrid rollout asserts that the GPUs divide into rollout replicas of ``tp x dp x pp`` GPUs
  (``workers/engine_workers.py``), that a replica larger than a node spans whole nodes
  (``workers/rollout/replica.py``) and, with rollout data parallelism, that the tensor-parallel size
  divides the GPUs of a node (``vllm_async_server.py``); a replica smaller than a node that does not
  divide it would straddle two nodes, which verl does not check and vLLM cannot run;
- the batch is padded with synthetic samples up to a multiple of ``lcm(dp, mini-batch)``
  (``_balance_batch``): not an error, but a waste worth a warning.
"""

from __future__ import annotations

import math
from typing import Any, Optional

from omegaconf import OmegaConf

__all__ = [
    "batch_padding_warnings",
    "grpo_batch_problems",
    "rollout_layout_problems",
    "world_size",
]


def _get(cfg: Any, key: str, default: Any = None) -> Any:
    return OmegaConf.select(cfg, key, default=default)


def world_size(cfg: Any) -> int:
    """GPUs of the run: ``trainer.nnodes x trainer.n_gpus_per_node``."""
    return int(_get(cfg, "trainer.nnodes", 1)) * int(_get(cfg, "trainer.n_gpus_per_node", 1))


def _actor_sp(cfg: Any) -> int:
    """Ulysses sequence-parallel size of the FSDP actor (1 unless set)."""
    return int(_get(cfg, "actor_rollout_ref.actor.ulysses_sequence_parallel_size", 1) or 1)


def _actor_dp(cfg: Any) -> Optional[int]:
    """The actor's data-parallel size as verl's FSDP engine computes it (world // sp), None if sp does not divide."""
    world, sp = world_size(cfg), _actor_sp(cfg)
    return world // sp if world >= 1 and world % sp == 0 else None


def _mini_batch_sequences(cfg: Any) -> int:
    return int(_get(cfg, "actor_rollout_ref.actor.ppo_mini_batch_size")) * int(_get(cfg, "actor_rollout_ref.rollout.n"))


def grpo_batch_problems(cfg: Any, *, use_critic: bool = False) -> list[str]:
    """Batch-size rules the v1 trainer and the actor workers assert at run time (see the module docstring)."""
    problems: list[str] = []
    world, sp = world_size(cfg), _actor_sp(cfg)
    nodes, per_node = _get(cfg, "trainer.nnodes"), _get(cfg, "trainer.n_gpus_per_node")
    if world < 1:
        return [f"trainer.nnodes x trainer.n_gpus_per_node = {nodes} x {per_node} must be at least 1"]
    if world % sp:
        problems.append(
            f"actor_rollout_ref.actor.ulysses_sequence_parallel_size={sp} must divide the {world} GPUs"
            f" (trainer.nnodes x trainer.n_gpus_per_node = {nodes} x {per_node})"
        )
        return problems
    dp = world // sp
    n = int(_get(cfg, "actor_rollout_ref.rollout.n"))
    mini_prompts = int(_get(cfg, "actor_rollout_ref.actor.ppo_mini_batch_size"))
    mini = _mini_batch_sequences(cfg)
    train_batch = int(_get(cfg, "data.train_batch_size"))
    if mini % dp:
        problems.append(
            f"the actor's mini-batch of ppo_mini_batch_size x rollout.n = {mini_prompts} x {n} = {mini} sequences"
            f" does not divide by its {dp} data-parallel ranks ({nodes} nodes x {per_node} GPUs"
            + (f" / sequence parallel {sp}" if sp > 1 else "")
            + f"): verl asserts this in the actor update, after the first rollout. {_mini_batch_fix(mini, n, sp, dp, train_batch, mini_prompts)}"
        )
    if use_critic:
        critic_mini = int(_get(cfg, "critic.ppo_mini_batch_size")) * n
        if critic_mini % dp:
            problems.append(
                f"the critic's mini-batch of critic.ppo_mini_batch_size x rollout.n = {critic_mini} sequences does"
                f" not divide by {dp} data-parallel ranks (asserted in the critic update)"
            )

    mode = _get(cfg, "trainer.v1.trainer_mode", "sync")
    sync_steps = int(_get(cfg, f"trainer.v1.{mode}.parameter_sync_step", 1) or 1)
    if train_batch % sync_steps:
        problems.append(
            f"data.train_batch_size={train_batch} must divide by trainer.v1.{mode}.parameter_sync_step={sync_steps}"
        )
    else:
        per_trigger = train_batch // sync_steps
        gen_batch = int(_get(cfg, "data.gen_batch_size", None) or train_batch)
        if per_trigger % gen_batch:
            problems.append(
                f"each of the {sync_steps} rollout trigger(s) takes data.train_batch_size / parameter_sync_step ="
                f" {per_trigger} prompts, which must be a multiple of data.gen_batch_size={gen_batch}"
            )

    if _get(cfg, "actor_rollout_ref.actor.use_dynamic_bsz", False):
        longest = int(_get(cfg, "data.max_prompt_length")) + int(_get(cfg, "data.max_response_length"))
        for key in ("actor_rollout_ref.actor.ppo_max_token_len_per_gpu",
                    "actor_rollout_ref.rollout.log_prob_max_token_len_per_gpu"):
            budget = _get(cfg, key)
            if budget is not None and int(budget) * sp < longest:
                problems.append(
                    f"{key}={budget} (x sequence parallel {sp}) is below the longest sequence,"
                    f" data.max_prompt_length + data.max_response_length = {longest}: verl's dynamic batching"
                    f" asserts that one sequence fits a micro-batch; set {key}>={math.ceil(longest / sp)}"
                )
    return problems


def _divisors(k: int) -> list[int]:
    return [d for d in range(1, k + 1) if k % d == 0]


def _mini_batch_fix(mini: int, n: int, sp: int, dp: int, train_batch: int, mini_prompts: int) -> str:
    """The nearest GPU counts whose data-parallel size divides the mini-batch, and a mini-batch that fits this one."""
    world = dp * sp
    counts = [d * sp for d in _divisors(mini)]
    below = [c for c in counts if c < world][-1:]
    above = [c for c in counts if c > world][:1]
    fix = f"Use {' or '.join(map(str, below + above))} GPUs (data-parallel sizes that divide {mini})"
    fitting = [p for p in _divisors(train_batch) if p <= mini_prompts and (p * n) % dp == 0]
    if fitting:
        fix += f", or actor_rollout_ref.actor.ppo_mini_batch_size={fitting[-1]}"
    return fix


def batch_padding_warnings(cfg: Any) -> list[str]:
    """Synthetic samples verl adds per step to make the batch divide (``_balance_batch``), if any."""
    dp = _actor_dp(cfg)
    if dp is None:
        return []
    n = int(_get(cfg, "actor_rollout_ref.rollout.n"))
    sequences = int(_get(cfg, "data.train_batch_size")) * n
    multiple = math.lcm(dp, _mini_batch_sequences(cfg))
    padding = -sequences % multiple
    if not padding:
        return []
    return [
        f"each step's {sequences} sequences are padded with {padding} synthetic ones to a multiple of"
        f" lcm(data-parallel size {dp}, mini-batch {_mini_batch_sequences(cfg)}) = {multiple}: that much actor"
        " compute is wasted; make data.train_batch_size a multiple of actor_rollout_ref.actor.ppo_mini_batch_size"
    ]


def rollout_layout_problems(cfg: Any) -> list[str]:
    """Rollout replicas (``tp x dp x pp`` GPUs each) must tile the GPUs without straddling a node."""
    rollout = "actor_rollout_ref.rollout"
    tp = int(_get(cfg, f"{rollout}.tensor_model_parallel_size", 1) or 1)
    rdp = int(_get(cfg, f"{rollout}.data_parallel_size", 1) or 1)
    pp = int(_get(cfg, f"{rollout}.pipeline_model_parallel_size", 1) or 1)
    replica = tp * rdp * pp
    world = world_size(cfg)
    per_node = int(_get(cfg, f"{rollout}.n_gpus_per_node", None) or _get(cfg, "trainer.n_gpus_per_node"))
    shape = f"tensor_model_parallel_size x data_parallel_size x pipeline_model_parallel_size = {tp} x {rdp} x {pp}"
    problems: list[str] = []
    if replica < 1 or world % replica:
        problems.append(
            f"a rollout replica takes {replica} GPUs ({rollout}.{shape}), which does not divide the run's {world}"
            f" GPUs: verl asserts this when the workers start. Choose {rollout}.tensor_model_parallel_size among the"
            f" divisors of {per_node} (GPUs per node)"
        )
    elif replica > per_node and replica % per_node:
        problems.append(
            f"a rollout replica of {replica} GPUs ({shape}) spans more than one node of {per_node} GPUs and must"
            " then take whole nodes (verl asserts world_size % gpus_per_node in its rollout replica)"
        )
    elif replica < per_node and per_node % replica:
        problems.append(
            f"a rollout replica of {replica} GPUs ({shape}) does not divide the {per_node} GPUs of a node, so some"
            " replica would straddle two nodes; choose a tensor-parallel size that divides the GPUs per node"
        )
    if rdp > 1 and per_node % tp:
        problems.append(
            f"{rollout}.data_parallel_size={rdp} needs tensor_model_parallel_size={tp} to divide the {per_node}"
            " GPUs of a node (asserted by verl's vLLM server)"
        )
    return problems
