"""One token-in, token-out generation with transformers ``generate``: the engine of the hf rollout.

Kept apart from the Ray plumbing (:mod:`.rollout`) so it can be tested and reused directly.

Contract (the one verl's vLLM server honours, ``vLLMHttpServer.generate``):

- input: prompt token ids as the agent loop built them (Qwen2.5-VL image placeholders already
  expanded to one ``<|image_pad|>`` per visual token), the images (PIL) and verl's sampling
  dict (``temperature``, ``top_p``, ``top_k``, ``repetition_penalty``, ``logprobs``,
  optionally ``max_tokens``);
- output: the new token ids (an EOS token included, as vLLM does) and, when asked, the log-prob
  of each sampled token.

Log-probs are ``log_softmax(logits / T)`` of the model's raw logits, taken over the full
vocabulary (``T`` = 1 for greedy). That is exactly what verl's actor computes for
``old_log_prob`` (``logits / temperature``, no top-k/top-p truncation), so on the same weights
the rollout and actor log-probs agree to float precision; vLLM's ``processed_logprobs`` also
scale by the temperature.

Vision placeholder tokens are suppressed while sampling (verl's vLLM server bans the same ids):
a sampled ``<|image_pad|>`` would break the next multimodal forward.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence

import torch


@dataclass(frozen=True)
class GenerationResult:
    """What one request produced."""

    token_ids: list[int]
    log_probs: Optional[list[float]]
    #: ``"stop"`` (an EOS token ended it) or ``"length"`` (``max_tokens`` reached).
    finish_reason: str


def _ids(value: Any) -> list[int]:
    if value is None:
        return []
    if isinstance(value, int):
        return [value]
    return [int(v) for v in value]


def expand_image_placeholders(
    prompt_ids: Sequence[int], image_token_id: int, tokens_per_image: Sequence[int]
) -> list[int]:
    """Give image ``i`` exactly ``tokens_per_image[i]`` consecutive ``image_token_id`` tokens.

    The agent loop sends prompts with the placeholders already expanded; collapsing each run and
    re-expanding it from the processor's own grid makes the count right by construction (and also
    accepts collapsed prompts, as vLLM does).
    """
    collapsed: list[int] = []
    for token in prompt_ids:
        if token == image_token_id and collapsed and collapsed[-1] == image_token_id:
            continue
        collapsed.append(int(token))
    runs = sum(1 for token in collapsed if token == image_token_id)
    if runs != len(tokens_per_image):
        raise ValueError(
            f"the prompt has {runs} image placeholder run(s) but {len(tokens_per_image)} image(s) were sent"
        )
    expanded: list[int] = []
    counts = iter(tokens_per_image)
    for token in collapsed:
        if token == image_token_id:
            expanded.extend([image_token_id] * int(next(counts)))
        else:
            expanded.append(token)
    return expanded


def build_model_inputs(
    processor: Any,
    prompt_ids: Sequence[int],
    images: Optional[Sequence[Any]] = None,
    mm_processor_kwargs: Optional[dict[str, Any]] = None,
) -> dict[str, torch.Tensor]:
    """Model inputs for one prompt: ``input_ids``, ``attention_mask`` and the image tensors."""
    inputs: dict[str, torch.Tensor] = {}
    ids = [int(t) for t in prompt_ids]
    if images:
        image_processor = getattr(processor, "image_processor", None)
        if image_processor is None:
            raise ValueError("images were sent but the model has no image processor (text-only model?)")
        vision = image_processor(images=list(images), return_tensors="pt", **(mm_processor_kwargs or {}))
        grid = vision["image_grid_thw"]
        merge = int(getattr(image_processor, "merge_size", 1)) ** 2
        tokens_per_image = [int(row.prod()) // merge for row in grid]
        ids = expand_image_placeholders(ids, int(processor.image_token_id), tokens_per_image)
        inputs.update({key: value for key, value in vision.items() if isinstance(value, torch.Tensor)})
    inputs["input_ids"] = torch.tensor([ids], dtype=torch.long)
    inputs["attention_mask"] = torch.ones_like(inputs["input_ids"])
    return inputs


def resolve_max_tokens(
    sampling_params: dict[str, Any], prompt_len: int, prompt_length: int, response_length: int, max_model_len: int
) -> int:
    """``max_tokens`` as verl's vLLM server computes it: the request's value, else the response
    budget, clamped to the model's context (at least one token)."""
    headroom = max_model_len - prompt_len
    if headroom < 1:
        raise ValueError(
            f"prompt length ({prompt_len}) leaves no room to generate within the context length ({max_model_len})"
        )
    if "max_tokens" in sampling_params:
        wanted = int(sampling_params["max_tokens"])
    elif "max_new_tokens" in sampling_params:
        wanted = int(sampling_params["max_new_tokens"])
    else:
        wanted = min(response_length, prompt_length + response_length - prompt_len)
    return max(1, min(wanted, headroom))


@torch.no_grad()
def generate_one(
    model: Any,
    inputs: dict[str, torch.Tensor],
    sampling_params: dict[str, Any],
    *,
    max_tokens: int,
    eos_token_ids: Sequence[int],
    pad_token_id: Optional[int],
    banned_token_ids: Sequence[int] = (),
    ignore_eos: bool = False,
    seed: Optional[int] = None,
) -> GenerationResult:
    """Sample one continuation of ``inputs`` (batch of one) and return its tokens and log-probs."""
    from transformers import GenerationConfig

    temperature = float(sampling_params.get("temperature", 1.0) or 0.0)
    greedy = temperature <= 0.0
    top_k = int(sampling_params.get("top_k", -1) or -1)
    eos = _ids(eos_token_ids)
    config = GenerationConfig(
        max_new_tokens=max_tokens,
        min_new_tokens=max_tokens if ignore_eos else 0,
        do_sample=not greedy,
        temperature=None if greedy else temperature,
        top_p=None if greedy else float(sampling_params.get("top_p", 1.0)),
        # HF's "disabled" is 0 (its default is 50); verl's is -1.
        top_k=None if greedy else (top_k if top_k > 0 else 0),
        repetition_penalty=float(sampling_params.get("repetition_penalty", 1.0) or 1.0),
        suppress_tokens=list(banned_token_ids) or None,
        eos_token_id=eos or None,
        pad_token_id=pad_token_id if pad_token_id is not None else (eos[0] if eos else None),
        output_logits=True,
        return_dict_in_generate=True,
    )
    if seed is not None:
        torch.manual_seed(seed)
    prompt_len = inputs["input_ids"].shape[1]
    out = model.generate(**inputs, generation_config=config)
    token_ids = out.sequences[0, prompt_len:].tolist()

    log_probs = None
    if sampling_params.get("logprobs"):
        # Raw logits of each step, as the actor sees them: scale, normalise, pick the sampled token.
        logits = torch.cat([step.float() for step in out.logits], dim=0)[: len(token_ids)]
        if not greedy:
            logits = logits / temperature
        chosen = torch.tensor(token_ids, dtype=torch.long, device=logits.device).unsqueeze(-1)
        log_probs = torch.log_softmax(logits, dim=-1).gather(-1, chosen).squeeze(-1).tolist()

    finish_reason = "stop" if token_ids and token_ids[-1] in eos and not ignore_eos else "length"
    return GenerationResult(token_ids=token_ids, log_probs=log_probs, finish_reason=finish_reason)
