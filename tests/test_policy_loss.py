"""The dynamic-clip loss against verl's real ``ppo_loss`` and ``vanilla`` loss, on padded tensors."""

from __future__ import annotations

import math
import pickle
from functools import partial

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("verl")

from tensordict import TensorDict  # noqa: E402

from verl.trainer.ppo.core_algos import get_policy_loss_fn  # noqa: E402
from verl.utils import tensordict_utils as tu  # noqa: E402
from verl.workers.config import FSDPActorConfig, PolicyLossConfig  # noqa: E402
from verl.workers.utils.losses import ppo_loss  # noqa: E402

from recipe.guardreasoner_vl.clip_schedule import get_clip_schedule  # noqa: E402
from recipe.guardreasoner_vl.policy_loss import (  # noqa: E402
    CLIP_EPS_KEY,
    CLIP_EPS_METRIC,
    LOSS_MODE,
    ScheduledClipLoss,
    compute_policy_loss_dynamic_clip,
    stamp_clip_eps,
    with_clip_eps,
)

# A padded batch: 4 sequences, prompt width 5 (left-padded), response width 7 (right-padded).
PROMPT_LENS = (5, 3, 4, 2)
RESPONSE_LENS = (7, 2, 5, 6)
P, R = 5, 7


def _actor_config(loss_mode: str, eps: float = 0.2, agg: str = "token-mean") -> FSDPActorConfig:
    return FSDPActorConfig(
        strategy="fsdp2",
        rollout_n=1,
        ppo_micro_batch_size_per_gpu=2,
        clip_ratio=eps,
        clip_ratio_low=eps,
        clip_ratio_high=eps,
        loss_agg_mode=agg,
        policy_loss=PolicyLossConfig(loss_mode=loss_mode),
    )


def _batch(seed: int = 0, spread: float = 0.3):
    """(model_output, data factory, response log-prob leaf) as verl's actor hands them to the loss.

    The model's log-probs come flat over the valid tokens of each sequence (prompt + response), and
    ``ppo_loss`` slices the response part out of them; ``spread`` sets how far the new policy is
    from the old one (how much gets clipped).
    """
    gen = torch.Generator().manual_seed(seed)
    b = len(PROMPT_LENS)
    attention = torch.zeros(b, P + R, dtype=torch.long)
    for i, (p, r) in enumerate(zip(PROMPT_LENS, RESPONSE_LENS)):
        attention[i, P - p : P] = 1
        attention[i, P : P + r] = 1
    response_mask = attention[:, P:].clone()
    old = torch.randn(b, R, generator=gen) * 0.1 - 1.0
    new = (old + torch.randn(b, R, generator=gen) * spread).requires_grad_(True)
    advantages = torch.randn(b, 1, generator=gen).expand(b, R).contiguous()
    pieces = []
    for i, (p, r) in enumerate(zip(PROMPT_LENS, RESPONSE_LENS)):
        prompt_part = torch.randn(p - 1, generator=gen)
        tail = torch.randn(1, generator=gen)
        pieces += [prompt_part, new[i, :r], tail]
    flat = torch.cat(pieces)

    def data(eps=None) -> TensorDict:
        td = TensorDict(
            {
                "prompts": torch.ones(b, P, dtype=torch.long),
                "responses": torch.ones(b, R, dtype=torch.long),
                "attention_mask": attention,
                "response_mask": response_mask,
                "old_log_probs": old,
                "advantages": advantages,
            },
            batch_size=[b],
        )
        tu.assign_non_tensor(td, dp_size=1, batch_num_tokens=int(response_mask.sum()), global_batch_size=b)
        if eps is not None:  # as the trainer sends it: extra_info -> NonTensorData of the batch
            stamp = {}
            stamp_clip_eps(stamp, eps)
            for key, value in stamp.items():
                tu.assign_non_tensor_data(td, key, value)
        return td

    return {"log_probs": flat}, data, new


def _value(metric):
    """A verl ``Metric`` (what ppo_loss returns) as its aggregated float."""
    return float(metric.aggregate()) if hasattr(metric, "aggregate") else metric


@pytest.mark.parametrize("eps", [0.2, 0.05, 0.01, 0.0])
@pytest.mark.parametrize("agg", ["token-mean", "seq-mean-token-mean"])
def test_scheduled_loss_equals_vanilla_with_the_same_epsilon(eps, agg):
    model_output, data, new = _batch(seed=1)
    vanilla_loss, vanilla_metrics = ppo_loss(config=_actor_config("vanilla", eps, agg), model_output=model_output, data=data())
    (vanilla_grad,) = torch.autograd.grad(vanilla_loss, new)

    scheduled = ScheduledClipLoss(_actor_config(LOSS_MODE, 0.2, agg))
    loss, metrics = scheduled(model_output=model_output, data=data(eps))
    (grad,) = torch.autograd.grad(loss, new)

    torch.testing.assert_close(loss, vanilla_loss, rtol=0, atol=0)
    torch.testing.assert_close(grad, vanilla_grad, rtol=0, atol=0)
    for key in ("actor/pg_clipfrac", "actor/pg_clipfrac_lower", "actor/ppo_kl", "actor/pg_loss"):
        assert _value(metrics[key]) == _value(vanilla_metrics[key]), key
    assert _value(metrics[CLIP_EPS_METRIC]) == eps


def test_the_carried_epsilon_changes_the_clipping():
    model_output, data, _ = _batch(seed=2, spread=0.5)
    scheduled = ScheduledClipLoss(_actor_config(LOSS_MODE))
    fractions = [_value(scheduled(model_output=model_output, data=data(eps))[1]["actor/pg_clipfrac"]) for eps in (0.2, 0.02)]
    assert fractions[1] > fractions[0] > 0


def test_constant_schedule_reproduces_stock_grpo_exactly():
    """Stock verl (vanilla loss, default clip 0.2) vs the recipe loss fed the constant schedule."""
    model_output, data, new = _batch(seed=3, spread=0.4)
    stock = partial(ppo_loss, config=_actor_config("vanilla"))
    stock_loss, stock_metrics = stock(model_output=model_output, data=data())
    (stock_grad,) = torch.autograd.grad(stock_loss, new)

    scheduled = ScheduledClipLoss(_actor_config(LOSS_MODE))
    for step in (1, 5, 10):
        eps = get_clip_schedule("constant")(step, 10, eps0=0.2)
        loss, metrics = scheduled(model_output=model_output, data=data(eps))
        (grad,) = torch.autograd.grad(loss, new)
        assert torch.equal(loss, stock_loss) and torch.equal(grad, stock_grad)
        assert _value(metrics["actor/pg_clipfrac"]) == _value(stock_metrics["actor/pg_clipfrac"])


@pytest.mark.parametrize("name", ["product", "linear", "cosine"])
def test_the_last_step_is_a_real_ppo_step_with_the_default_floor(name):
    """At s = S the formula gives a clip of exactly 0: clamp has no gradient at its bound and maximum
    splits the tie, so on-policy tokens (ratio 1, the first mini-batch of a step) get half their
    gradient. The default floor keeps the full policy gradient; floor 0 reproduces the formula."""
    model_output, data, new = _batch(seed=4, spread=0.0)  # on-policy: log_prob == old_log_prob
    scheduled = ScheduledClipLoss(_actor_config(LOSS_MODE))
    schedule = get_clip_schedule(name)
    # the unclipped policy gradient of the same batch (clip 0.9: nothing at ratio 1 is clipped)
    (full,) = torch.autograd.grad(scheduled(model_output=model_output, data=data(0.9))[0], new)
    assert full.abs().sum() > 0

    default_eps = schedule(10, 10)
    (grad,) = torch.autograd.grad(scheduled(model_output=model_output, data=data(default_eps))[0], new)
    assert default_eps == 0.01 and torch.equal(grad, full)

    formula_eps = schedule(10, 10, floor=0.0)
    loss, metrics = scheduled(model_output=model_output, data=data(formula_eps))
    (grad,) = torch.autograd.grad(loss, new)
    assert formula_eps == pytest.approx(0.0, abs=1e-15)
    torch.testing.assert_close(grad, full / 2)


def test_the_epsilon_survives_micro_batch_splitting():
    """verl's engine splits a mini-batch into micro-batches with tu.chunk_tensordict: the value stays."""
    _, data, _ = _batch()
    for chunk in tu.chunk_tensordict(data(0.0375), 2):
        assert tu.get_non_tensor_data(chunk, key=CLIP_EPS_KEY, default=None) == 0.0375


def test_registered_under_its_loss_mode():
    assert get_policy_loss_fn(LOSS_MODE) is compute_policy_loss_dynamic_clip


def test_batch_without_the_epsilon_is_an_error():
    model_output, data, _ = _batch()
    with pytest.raises(RuntimeError, match="carries no 'guardreasoner_clip_eps'.*main_grpo"):
        ScheduledClipLoss(_actor_config(LOSS_MODE))(model_output=model_output, data=data())


def test_loss_mode_under_stock_workers_is_an_error_not_a_silent_constant():
    """verl's default worker loss passes the yaml config as is: the loss refuses it."""
    model_output, data, _ = _batch()
    with pytest.raises(RuntimeError, match="without a scheduled clip ratio"):
        ppo_loss(config=_actor_config(LOSS_MODE), model_output=model_output, data=data(0.1))


def test_bad_values_and_modes_are_rejected():
    with pytest.raises(ValueError, match="needs actor.policy_loss.loss_mode=guardreasoner_dynamic_clip"):
        ScheduledClipLoss(_actor_config("vanilla"))
    with pytest.raises(ValueError, match=r"clip ratio must be a number in \[0, 1\)"):
        stamp_clip_eps({}, 1.5)
    model_output, data, _ = _batch()
    td = data()
    tu.assign_non_tensor_data(td, CLIP_EPS_KEY, "0.1")
    with pytest.raises(ValueError, match="batch field 'guardreasoner_clip_eps'"):
        ScheduledClipLoss(_actor_config(LOSS_MODE))(model_output=model_output, data=td)


def test_derived_config_keeps_everything_but_the_clip():
    base = _actor_config(LOSS_MODE, agg="seq-mean-token-mean")
    derived = with_clip_eps(base, 0.07)
    assert (derived.clip_ratio, derived.clip_ratio_low, derived.clip_ratio_high) == (0.07, 0.07, 0.07)
    assert derived.loss_agg_mode == base.loss_agg_mode and derived.policy_loss == base.policy_loss
    assert derived.global_batch_info is base.global_batch_info  # ppo_loss fills it per micro-batch
    assert (base.clip_ratio_low, base.clip_ratio_high) == (0.2, 0.2)  # the original is untouched


def test_loss_object_pickles_for_ray():
    loss = ScheduledClipLoss(_actor_config(LOSS_MODE))
    model_output, data, _ = _batch()
    loss(model_output=model_output, data=data(0.1))  # fills the cache
    clone = pickle.loads(pickle.dumps(loss))
    assert clone._cached is None and clone.config == loss.config
    torch.testing.assert_close(
        clone(model_output=model_output, data=data(0.1))[0], loss(model_output=model_output, data=data(0.1))[0]
    )


@pytest.mark.e2e
@pytest.mark.slow
def test_gpu_actor_update_script_runs_both_losses_through_the_real_worker(tmp_path):
    """benchmarks/gpu_actor_update.py --tiny: verl's TrainingWorker (FSDP2, CPU backend) updates the tiny
    model once per loss; the worker-side metrics show the carried clip value for the recipe's loss.

    ``--stub-all`` rehearses the bare GPU host (no ray, TransferQueue, fastapi, ... installed), so the
    lead's GPU run does not discover an import problem on the clock."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    out = tmp_path / "tiny.json"
    proc = subprocess.run(
        [sys.executable, str(repo / "benchmarks" / "gpu_actor_update.py"), "--tiny", "--stub-all", "--repeats", "1", "--json", str(out)],
        cwd=tmp_path,
        env={**os.environ, "VERL_LOGGING_LEVEL": "WARN"},
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    ours, vanilla = report["results"]["guardreasoner_dynamic_clip"][0], report["results"]["vanilla"][0]
    assert ours["metrics"]["actor/clip_eps"] == pytest.approx(0.1)
    assert "actor/clip_eps" not in vanilla["metrics"]
    for run in (ours, vanilla):
        assert run["seconds"] > 0 and math.isfinite(run["metrics"]["actor/pg_loss"])
    assert report["samples"] == 4 and report["tokens"] > 0
    assert set(report["stubbed_modules"]) >= {"ray", "transfer_queue"}
