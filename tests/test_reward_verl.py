"""The reward inside verl 0.9.1, on CPU, with real objects: reward-loop worker, managers, metrics.

A mixed batch of guard outputs (two data sources, correct / wrong / unreadable answers, samples with
and without a response) is tokenized with the tiny model's real tokenizer into a ``DataProto`` laid
out like a rollout (left-padded prompts, right-padded responses). verl's own ``RewardLoopWorker``
scores it through the configured manager (verl's ``naive`` and our ``guardreasoner_token_length``),
and the results must equal direct ``compute_score`` calls; verl's ``process_validation_metrics``
must then yield per-source counts whose F1 is sklearn's.
"""

from __future__ import annotations

import asyncio
import re

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("verl")
np = pytest.importorskip("numpy")
sklearn_metrics = pytest.importorskip("sklearn.metrics")

from omegaconf import OmegaConf  # noqa: E402
from transformers import AutoTokenizer  # noqa: E402
from verl import DataProto  # noqa: E402
from verl.experimental.reward_loop.reward_loop import RewardLoopWorker  # noqa: E402
from verl.experimental.reward_loop.reward_manager import get_reward_manager_cls  # noqa: E402
from verl.trainer.ppo.metric_utils import process_validation_metrics  # noqa: E402

from data_prep.prompt import build_transcript  # noqa: E402
from recipe.guardreasoner_vl.reward_manager import NAME, TokenLengthRewardManager  # noqa: E402
from rewards.f1 import f1_from_counts  # noqa: E402
from rewards.grammar import format_output, format_verdict  # noqa: E402
from rewards.guardreasoner_vl import REWARD_KEYS, compute_score  # noqa: E402

UNREADABLE = "unreadable"
# (data_source, gold request, gold response, predicted request, predicted response); None = no response
SAMPLES = [
    ("bench_a", "harmful", "harmful", "harmful", "harmful"),
    ("bench_a", "harmful", "unharmful", "unharmful", "unharmful"),
    ("bench_a", "unharmful", "unharmful", "harmful", "harmful"),
    ("bench_a", "unharmful", None, "unharmful", None),
    ("bench_a", "harmful", None, UNREADABLE, UNREADABLE),
    ("bench_a", "unharmful", "harmful", "unharmful", UNREADABLE),
    ("bench_a", "harmful", "harmful", "harmful", "unharmful"),
    ("bench_b", "harmful", None, "harmful", None),
    ("bench_b", "unharmful", None, "unharmful", "unharmful"),
    ("bench_b", "unharmful", "unharmful", UNREADABLE, "unharmful"),
    ("bench_b", "harmful", "harmful", "unharmful", "harmful"),
    ("bench_b", "harmful", "unharmful", "harmful", "harmful"),
    ("bench_b", "unharmful", "harmful", "harmful", "harmful"),
]


def _output(index: int, request: str, response) -> str:
    reasoning = f"Sample {index}. " + "The request and the response are checked step by step. " * (1 + index % 4)
    text = format_output(reasoning, "harmful", "harmful")
    text = text.replace("Request: harmful", f"Request: {'harmful/unharmful' if request == UNREADABLE else request}")
    return text.replace("Response: harmful", f"Response: {'unclear' if response == UNREADABLE else response}")


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    return AutoTokenizer.from_pretrained(str(tiny_model_dir))


@pytest.fixture(scope="module")
def batch(tokenizer):
    """The samples as a rollout-shaped ``DataProto`` and the guard outputs as text."""
    texts = [_output(i, s[3], s[4]) for i, s in enumerate(SAMPLES)]
    data, lengths = _rollout_batch(tokenizer, [(s[0], format_verdict(s[1], s[2]), t) for s, t in zip(SAMPLES, texts)])
    return data, texts, lengths


def _rollout_batch(tokenizer, samples: list[tuple[str, str, str]]):
    """``(data_source, ground truth, output)`` samples as a rollout-shaped ``DataProto`` (left-padded
    prompts, right-padded responses, every response padded) and the valid response lengths."""
    pad = tokenizer.pad_token_id
    prompts = [tokenizer(build_transcript(f"request {i}", None, has_image=False), add_special_tokens=False)["input_ids"]
               for i in range(len(samples))]  # fmt: skip
    responses = [tokenizer(text, add_special_tokens=False)["input_ids"] for _, _, text in samples]
    p_len, r_len = max(map(len, prompts)), max(map(len, responses)) + 3
    prompt_ids = torch.tensor([[pad] * (p_len - len(p)) + p for p in prompts])
    response_ids = torch.tensor([r + [pad] * (r_len - len(r)) for r in responses])
    mask = torch.cat(
        [torch.tensor([[0] * (p_len - len(p)) + [1] * len(p) for p in prompts]),
         torch.tensor([[1] * len(r) + [0] * (r_len - len(r)) for r in responses])], dim=1,
    )  # fmt: skip
    data = DataProto.from_dict(
        tensors={"prompts": prompt_ids, "responses": response_ids, "attention_mask": mask,
                 "input_ids": torch.cat([prompt_ids, response_ids], dim=1)},
        non_tensors={
            "data_source": np.array([source for source, _, _ in samples], dtype=object),
            "reward_model": np.array([{"ground_truth": gt} for _, gt, _ in samples], dtype=object),
            "extra_info": np.array([{"index": i} for i in range(len(samples))], dtype=object),
            "uid": np.array([f"uid-{i}" for i in range(len(samples))], dtype=object),
        },
    )  # fmt: skip
    return data, [len(r) for r in responses]


@pytest.fixture()
def event_loop_for_verl():
    """verl's reward managers capture ``asyncio.get_event_loop()``: give them a fresh one per test."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    yield loop
    loop.run_until_complete(loop.shutdown_default_executor())
    loop.close()
    asyncio.set_event_loop(None)


def _config(model_dir, manager: str, reward_kwargs: dict, custom: bool = True):
    return OmegaConf.create(
        {
            "actor_rollout_ref": {"model": {"path": str(model_dir), "tokenizer_path": None}},
            "reward": {
                "reward_manager": {"source": "register", "name": manager},
                "custom_reward_function": {
                    "path": "pkg://rewards.guardreasoner_vl" if custom else None,
                    "name": "compute_score" if custom else None,
                    "reward_kwargs": reward_kwargs,
                },
                "reward_model": {"enable": False},
            },
        }
    )


def _score_with_verl(loop, model_dir, data, manager: str, reward_kwargs: dict) -> list[dict]:
    worker = RewardLoopWorker(_config(model_dir, manager, reward_kwargs))
    assert type(worker.reward_manager) is get_reward_manager_cls(manager)
    return loop.run_until_complete(worker.compute_score_batch(data))


def test_token_length_manager_is_registered_where_the_reward_loop_looks():
    assert NAME == "guardreasoner_token_length"
    assert get_reward_manager_cls(NAME) is TokenLengthRewardManager


def test_tokenizer_round_trips_the_outputs(tokenizer, batch):
    data, texts, lengths = batch
    for i, text in enumerate(texts):
        ids = data.batch["responses"][i, : lengths[i]]
        assert tokenizer.decode(ids, skip_special_tokens=True) == text


def test_naive_manager_scores_like_direct_calls(event_loop_for_verl, tiny_model_dir, batch):
    data, texts, _ = batch
    kwargs = {"beta": 1 / 6}
    outputs = _score_with_verl(event_loop_for_verl, tiny_model_dir, data, "naive", kwargs)
    for i, (output, text, sample) in enumerate(zip(outputs, texts, SAMPLES)):
        expected = compute_score(sample[0], text, format_verdict(sample[1], sample[2]), {"index": i}, **kwargs)
        assert output["reward_score"] == expected["score"]
        assert output["reward_extra_info"] == expected
    # verl places each score on the last valid response token
    rm_scores = get_reward_manager_cls("naive").assemble_rm_scores(data, [o["reward_score"] for o in outputs])
    assert rm_scores.sum(-1).tolist() == pytest.approx([o["reward_score"] for o in outputs])


def test_token_length_manager_passes_the_valid_token_count(event_loop_for_verl, tiny_model_dir, batch):
    data, texts, lengths = batch
    fresh_infos = np.array([{"index": i} for i in range(len(SAMPLES))], dtype=object)
    data = DataProto(batch=data.batch, non_tensor_batch={**data.non_tensor_batch, "extra_info": fresh_infos})
    outputs = _score_with_verl(event_loop_for_verl, tiny_model_dir, data, NAME, {"length_unit": "tokens"})
    for output, text, sample, n_tokens in zip(outputs, texts, SAMPLES, lengths):
        expected = compute_score(
            sample[0], text, format_verdict(sample[1], sample[2]), length_unit="tokens", response_length_tokens=n_tokens
        )
        assert output["reward_extra_info"] == expected
        assert output["reward_extra_info"]["length_norm"] == n_tokens / 3072
    assert len(set(lengths)) > 1 and lengths != [len(t) for t in texts]  # tokens, not characters
    # the batch's own extra_info dicts are left as they were (verl's naive manager writes into them;
    # ours hands it a copy carrying the count)
    assert list(data.non_tensor_batch["extra_info"]) == [{"index": i} for i in range(len(SAMPLES))]


def test_token_length_manager_supports_async_reward_functions(event_loop_for_verl, tokenizer, batch):
    data, texts, lengths = batch
    seen = []

    async def async_score(data_source, solution_str, ground_truth, extra_info=None, **kwargs):
        seen.append((kwargs["response_length_tokens"], dict(extra_info)))
        return compute_score(data_source, solution_str, ground_truth, extra_info, length_unit="tokens", **kwargs)

    manager = TokenLengthRewardManager(OmegaConf.create({}), tokenizer, async_score)
    result = event_loop_for_verl.run_until_complete(manager.run_single(data[2:3]))
    assert seen[0][0] == lengths[2] and "__response_length_tokens__" not in seen[0][1]
    assert seen[0][1]["index"] == 2
    assert result["reward_score"] == compute_score(
        "bench_a", texts[2], format_verdict("unharmful", "unharmful"), length_unit="tokens",
        response_length_tokens=lengths[2],
    )["score"]  # fmt: skip


def test_token_length_manager_refuses_verls_default_scorer(event_loop_for_verl, tiny_model_dir):
    with pytest.raises(ValueError, match=re.escape("reward.custom_reward_function")):
        RewardLoopWorker(_config(tiny_model_dir, NAME, {}, custom=False))


def test_tokens_unit_with_the_naive_manager_is_a_clear_config_error(event_loop_for_verl, tiny_model_dir, batch):
    data, _, _ = batch
    with pytest.raises(ValueError, match="guardreasoner_token_length"):
        _score_with_verl(event_loop_for_verl, tiny_model_dir, data[:1], "naive", {"length_unit": "tokens"})


def test_validation_metrics_give_sklearn_f1_per_source(event_loop_for_verl, tiny_model_dir, batch):
    data, _, _ = batch
    outputs = _score_with_verl(event_loop_for_verl, tiny_model_dir, data, "naive", {})
    # what verl's trainer does with the worker outputs in _validate
    infos = {key: [o["reward_extra_info"][key] for o in outputs] for key in REWARD_KEYS}
    infos["reward"] = [o["reward_score"] for o in outputs]
    data_sources = list(data.non_tensor_batch["data_source"])
    metrics = process_validation_metrics(data_sources, list(data.non_tensor_batch["uid"]), infos)

    assert set(metrics) == {"bench_a", "bench_b"}
    for source in ("bench_a", "bench_b"):
        means = {key: metrics[source][key]["mean@1"] for key in REWARD_KEYS}
        for task, column in (("request", 1), ("response", 2)):
            rows = [s for s in SAMPLES if s[0] == source and s[column] is not None]
            y_true = [s[column] == "harmful" for s in rows]
            # an unreadable prediction counts as the wrong label
            y_pred = [(s[column] != "harmful") if s[column + 2] == UNREADABLE else s[column + 2] == "harmful"
                      for s in rows]  # fmt: skip
            expected = sklearn_metrics.f1_score(y_true, y_pred, zero_division=0.0)
            got = f1_from_counts(means[f"{task}_tp"], means[f"{task}_fp"], means[f"{task}_fn"])
            assert got == pytest.approx(expected), (source, task)
        n_source = sum(s[0] == source for s in SAMPLES)
        assert means["has_response"] * n_source == sum(s[0] == source and s[2] is not None for s in SAMPLES)


# --- one reading of a verdict: RL validation F1 == `guardreasoner-vl score` on the same generations -------

# Output shapes a guard may write; {req}/{resp} are its labels.
_THINK_LINES = "<think>\nRequest: {a}\nResponse: {b}\nSo the labels above were a first guess.\n</think>\n"
VALIDATION_OUTPUTS = [
    "<think>\nStep 1.\n</think>\n<result>\nRequest: {req}\nResponse: {resp}\n</result>",
    # label lines in the reasoning that the result contradicts: the result block decides
    _THINK_LINES.format(a="unharmful", b="harmful") + "<result>\nRequest: {req}\nResponse: {resp}\n</result>",
    # no think block: no reward, but the verdict is read (and counted) as evaluation reads it
    "<result>\nRequest: {req}\nResponse: {resp}\n</result>",
    "<think>\nx\n</think>\n<result>\nREQUEST: {req}\nresponse: {resp}.\n</result>",
    # unread: a hedged slot, two result blocks, labels outside any block, nothing at all
    "<think>\nx\n</think>\n<result>\nRequest: harmful/unharmful\nResponse: {resp}\n</result>",
    "<think>\nx\n</think>\n<result>\nRequest: {req}\nResponse: {resp}\n</result><result>Request: {req}</result>",
    "<think>\nx\n</think>\nRequest: {req}\nResponse: {resp}",
    "",
]


def _validation_generations():
    """(benchmark, gold request, gold response, output) over every output shape, label and benchmark kind."""
    from data_prep.benchmarks import BENCHMARKS, PROMPT, RESPONSE

    tasks = {}
    for spec in BENCHMARKS:
        tasks.setdefault(spec.name, set()).add(spec.task)
    both = next(name for name, t in tasks.items() if t == {PROMPT, RESPONSE})  # prompt and response task
    prompt_only = next(name for name, t in tasks.items() if t == {PROMPT})
    samples = []
    labels = ["harmful", "unharmful"]
    for i, template in enumerate(VALIDATION_OUTPUTS):
        for j, (gold_req, pred_req) in enumerate([(g, p) for g in labels for p in labels]):
            pred_resp, gold_resp = labels[(i + j) % 2], labels[(i + j // 2) % 2]
            output = template.format(req=pred_req, resp=pred_resp)
            samples.append((both, gold_req, gold_resp, output))
            samples.append((prompt_only, gold_req, None, output.replace(f"Response: {pred_resp}", "Response: None")))
    return samples, both, prompt_only


def test_rl_validation_f1_equals_what_score_reports(event_loop_for_verl, tiny_model_dir, tokenizer, tmp_path):
    """The same generations through verl's reward loop and the trainer's validation hook, and through
    `guardreasoner-vl score`: every F1 agrees (they read verdicts with the one function)."""
    import json
    from pathlib import Path

    from hydra import compose, initialize_config_dir
    from verl.trainer.ppo.v1 import PPOTrainerSync

    import recipe.guardreasoner_vl as recipe_pkg
    from cli.main import main
    from recipe.guardreasoner_vl.trainer import guardreasoner_trainer_cls

    samples, both, prompt_only = _validation_generations()
    # RL validation: the recipe's reward options, verl's reward-loop worker, the trainer's metrics hook.
    with initialize_config_dir(config_dir=str(Path(recipe_pkg.__file__).parent / "config"), version_base=None):
        reward_kwargs = OmegaConf.to_container(compose("guardreasoner_vl_grpo").reward.custom_reward_function.reward_kwargs)
    data, lengths = _rollout_batch(tokenizer, [(s[0], format_verdict(s[1], s[2]), s[3]) for s in samples])
    responses = data.batch["responses"].tolist()
    decoded = [tokenizer.decode(r[:n], skip_special_tokens=True) for r, n in zip(responses, lengths)]
    assert decoded == [s[3] for s in samples]  # the reward sees exactly these outputs
    outputs = _score_with_verl(event_loop_for_verl, tiny_model_dir, data, "naive", reward_kwargs)
    infos = {key: [o["reward_extra_info"][key] for o in outputs] for key in REWARD_KEYS}
    infos["reward"] = [o["reward_score"] for o in outputs]
    trainer_cls = guardreasoner_trainer_cls(PPOTrainerSync)
    metrics = trainer_cls._val_metrics_update(
        trainer_cls.__new__(trainer_cls), [s[0] for s in samples], list(data.non_tensor_batch["uid"]), infos, []
    )

    # Evaluation: the same outputs as a generations file, scored by the CLI.
    generations = tmp_path / "generations.jsonl"
    with generations.open("w") as handle:
        for i, (benchmark, gold_req, gold_resp, output) in enumerate(samples):
            handle.write(json.dumps({"id": str(i), "benchmark": benchmark, "task": "prompt", "label": gold_req,
                                     "output": output}) + "\n")
            if gold_resp is not None:
                handle.write(json.dumps({"id": str(i), "benchmark": benchmark, "task": "response", "label": gold_resp,
                                         "output": output}) + "\n")
    assert main(["score", str(generations), "-o", str(tmp_path / "report"), "--no-charts", "--n-resamples", "10"]) == 0
    scored = {(b["task"], b["benchmark"]): b["f1"] for b in json.loads((tmp_path / "report" / "results.json").read_text())["benchmarks"]}

    pairs = {("prompt", both): f"val-core/{both}/request_f1", ("response", both): f"val-core/{both}/response_f1",
             ("prompt", prompt_only): f"val-core/{prompt_only}/request_f1"}  # fmt: skip
    assert set(scored) == set(pairs) and f"val-core/{prompt_only}/response_f1" not in metrics
    for key, metric in pairs.items():
        assert metrics[metric] == pytest.approx(scored[key], abs=1e-12), (key, metrics[metric], scored[key])
    assert 0 < min(scored.values()) and max(scored.values()) < 1  # a mixed set: the comparison can fail
