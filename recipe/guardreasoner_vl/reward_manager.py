"""``guardreasoner_token_length``: verl's naive reward manager, plus the response's token count.

The GuardReasoner-VL reward can normalise the output length by tokens instead of characters
(``length_unit: tokens``, :mod:`rewards.guardreasoner_vl`), but verl's reward function contract only
hands over the decoded text. This manager is verl's ``naive`` one (decode, call ``compute_score``
once per sample, pass every dict key on as extra info) that also passes the valid response token
count as the keyword ``response_length_tokens``.

Selected with::

    reward:
      reward_manager: {source: register, name: guardreasoner_token_length}
      custom_reward_function:
        path: pkg://rewards.guardreasoner_vl
        name: compute_score
        reward_kwargs: {length_unit: tokens}

It lives in the registry that verl 0.9.1's reward loop reads for ``reward.reward_manager.name``
(``verl.experimental.reward_loop.reward_manager``; the older ``verl.workers.reward_manager`` one is
the legacy trainer's). :mod:`recipe.guardreasoner_vl.plugin` imports this module in every verl
process.

How the count reaches ``compute_score`` without copying ``NaiveRewardManager.run_single``: that
method is the only hook, and it calls ``self.compute_score(..., extra_info=...)`` with the row's
``extra_info``. :meth:`TokenLengthRewardManager.run_single` counts the tokens, gives the sample a
*copy* of its ``extra_info`` carrying the count under a private key (the batch's own dicts are
never touched, so concurrent samples cannot see each other's counts), and the scoring function is
wrapped once to move that key into the ``response_length_tokens`` keyword.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, Callable

import numpy as np

from verl import DataProto
from verl.experimental.reward_loop.reward_manager import register
from verl.experimental.reward_loop.reward_manager.naive import NaiveRewardManager
from verl.utils.reward_score import default_compute_score

NAME = "guardreasoner_token_length"
#: The keyword ``compute_score`` receives the valid response token count under.
TOKEN_COUNT_KWARG = "response_length_tokens"
# Private ``extra_info`` key carrying the count from run_single to the wrapped compute_score.
_EXTRA_INFO_KEY = "__response_length_tokens__"


def _pass_token_count(compute_score: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap ``compute_score`` so the count stashed in ``extra_info`` arrives as a keyword.

    The wrapper is a coroutine function exactly when ``compute_score`` is one: the naive manager
    decides how to call it (await vs. executor) from that.
    """

    def split(kwargs: dict[str, Any]) -> dict[str, Any]:
        extra_info = dict(kwargs.get("extra_info") or {})
        if _EXTRA_INFO_KEY not in extra_info:  # run_single always sets it: this is a wiring bug
            raise RuntimeError(f"{NAME}: no token count in extra_info; was run_single bypassed?")
        kwargs[TOKEN_COUNT_KWARG] = extra_info.pop(_EXTRA_INFO_KEY)
        kwargs["extra_info"] = extra_info
        return kwargs

    if inspect.iscoroutinefunction(compute_score):

        @functools.wraps(compute_score)
        async def async_wrapper(**kwargs: Any) -> Any:
            return await compute_score(**split(kwargs))

        return async_wrapper

    @functools.wraps(compute_score)
    def wrapper(**kwargs: Any) -> Any:
        return compute_score(**split(kwargs))

    return wrapper


def valid_response_length(data: DataProto) -> int:
    """Number of non-padding response tokens of the last sample in ``data``.

    Same count as the naive manager uses to cut the response before decoding (the response part
    of ``attention_mask``), so text and token count always describe the same tokens.
    """
    response_length = data.batch["responses"].shape[-1]
    return int(data.batch["attention_mask"][-1, -response_length:].sum().item())


@register(NAME)
class TokenLengthRewardManager(NaiveRewardManager):
    """verl's naive reward manager that also passes ``response_length_tokens`` to ``compute_score``.

    Needs a custom reward function that accepts the keyword (``rewards.guardreasoner_vl.compute_score``
    does); verl's built-in default scorer does not, so it is refused at construction.
    """

    def __init__(self, config, tokenizer, compute_score, reward_router_address=None, reward_model_tokenizer=None):
        if compute_score is None or compute_score is default_compute_score:
            raise ValueError(
                f"reward manager {NAME!r} passes {TOKEN_COUNT_KWARG} to the reward function, so it needs "
                "reward.custom_reward_function.path/name (e.g. pkg://rewards.guardreasoner_vl, compute_score)"
            )
        super().__init__(
            config, tokenizer, _pass_token_count(compute_score), reward_router_address, reward_model_tokenizer
        )

    async def run_single(self, data: DataProto) -> dict:
        data = data[-1:]  # the naive manager scores the last sequence of a multi-sequence output
        extra_info = dict(data.non_tensor_batch.get("extra_info", [None])[0] or {})
        extra_info[_EXTRA_INFO_KEY] = valid_response_length(data)
        non_tensor_batch = dict(data.non_tensor_batch)
        non_tensor_batch["extra_info"] = np.array([extra_info], dtype=object)
        return await super().run_single(
            DataProto(batch=data.batch, non_tensor_batch=non_tensor_batch, meta_info=data.meta_info)
        )
