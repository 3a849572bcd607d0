"""The ``vllm`` backend: offline ``vllm.LLM`` on GPU, the fastest way to score all 14 benchmarks.

vLLM is imported only when this backend is built, so the rest of the harness runs without it (and
on CPU). Everything it hands vLLM is built by pure functions below, tested on the CPU with the
model's own processor (vLLM itself is not installed on any host this project tests on):

- :func:`build_prompt`: the prompt string rendered by the model's HF processor chat template
  (:func:`~inference.base.chat_prompt`, byte-identical to the ``hf`` backend's) and the images as
  ``multi_modal_data``, so the image tokens stand where ``<image>`` stands;
- :func:`engine_kwargs`: ``mm_processor_kwargs`` with both pixel limits (transformers 5 ignores a
  lone ``max_pixels``), and ``max_model_len`` sized by :func:`size_max_model_len` from the pixel
  budget and the token limits;
- :func:`prompt_tokens` / :func:`fit_prompts`: each prompt's exact length, so a row too long for
  ``max_model_len`` is refused alone (``finish_reason`` ``prompt_too_long``, logged with its id) instead of raising
  inside ``LLM.generate``, which would abort the whole batch and stop every resumed run at the
  same row;
- :func:`sampling_kwargs`: every sampling parameter explicit (``top_k`` off, ``min_p`` 0,
  ``repetition_penalty`` 1), per-request seeds strided by ``n``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Optional, Sequence, Union

from data_prep.chat_request import TOP_K_OFF
from inference.base import (
    DEFAULT_MAX_NEW_TOKENS,
    FINISH_PROMPT_TOO_LONG,
    Generation,
    GenerationRequest,
    chat_prompt,
    check_sampling,
    load_image,
    own_pixel_limits,
    pixel_limits,
    request_seed,
)

log = logging.getLogger(__name__)

#: Room for a prompt's text (the ~400-token instruction and the transcript) when sizing
#: ``max_model_len``. GRPO keeps whole prompts within 3,072 tokens; 4,096 leaves room for the long
#: responses of the response-task benchmarks.
DEFAULT_PROMPT_TEXT_TOKENS = 4096
#: Tokens around each image's visual tokens (``<|vision_start|>``, ``<|vision_end|>``).
IMAGE_MARKER_TOKENS = 2
#: Images per prompt (the guard takes at most one).
MAX_IMAGES = 1


def effective_pixel_limits(image_processor: Any, max_pixels: Optional[int]) -> dict[str, int]:
    """The ``min_pixels`` / ``max_pixels`` an image is resized within: the cap, else the processor's own."""
    return pixel_limits(image_processor, max_pixels) or own_pixel_limits(image_processor)


def image_tokens(image_processor: Any, width: int, height: int, limits: dict[str, int]) -> int:
    """Visual tokens a Qwen2-VL-family processor spends on a ``width`` x ``height`` image.

    The processor resizes to multiples of ``patch_size * merge_size`` within the pixel limits
    (its ``smart_resize``) and merges ``merge_size``² patches into one token.
    """
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

    factor = image_processor.patch_size * image_processor.merge_size
    h, w = smart_resize(height, width, factor=factor, min_pixels=limits["min_pixels"], max_pixels=limits["max_pixels"])
    return (h // factor) * (w // factor)


def size_max_model_len(
    max_new_tokens: int,
    max_pixels: int,
    *,
    patch_factor: int = 28,
    text_tokens: int = DEFAULT_PROMPT_TEXT_TOKENS,
    images: int = MAX_IMAGES,
) -> int:
    """The context vLLM must hold for a prompt within budget plus the answer.

    The text allowance, each image at the pixel budget (at most ``max_pixels / patch_factor²``
    visual tokens, plus its two markers) and the decoding budget. A prompt longer than that is
    refused alone (see :func:`prompt_tokens`), never the batch.

    >>> size_max_model_len(4096, 1280 * 28 * 28)  # build-rl's pixel budget, the paper's decoding budget
    9474
    """
    return text_tokens + images * (max_pixels // patch_factor**2 + IMAGE_MARKER_TOKENS) + max_new_tokens


def build_prompt(processor: Any, request: GenerationRequest) -> dict[str, Any]:
    """The ``LLM.generate`` prompt: the rendered chat text and the images as ``multi_modal_data``."""
    prompt: dict[str, Any] = {"prompt": chat_prompt(processor, request)}
    if request.images:
        images = [load_image(img, key=request.key) for img in request.images]
        prompt["multi_modal_data"] = {"image": images[0] if len(images) == 1 else images}
    return prompt


def prompt_tokens(processor: Any, prompt: dict[str, Any], limits: dict[str, int]) -> int:
    """The exact length of a :func:`build_prompt` prompt once the processor expands its images.

    The rendered text holds one ``<|image_pad|>`` per image; the processor replaces it with the
    image's visual tokens (:func:`image_tokens`).
    """
    count = len(processor.tokenizer(prompt["prompt"], add_special_tokens=False)["input_ids"])
    images = (prompt.get("multi_modal_data") or {}).get("image", [])
    for image in images if isinstance(images, list) else [images]:
        count += image_tokens(processor.image_processor, image.width, image.height, limits) - 1
    return count


def fit_prompts(
    processor: Any, requests: Sequence[GenerationRequest], *, limits: dict[str, int], max_model_len: int, max_new_tokens: int
) -> list[Optional[dict[str, Any]]]:
    """:func:`build_prompt` for each request, or None for one whose prompt plus ``max_new_tokens``
    does not fit ``max_model_len`` (logged with its id and lengths)."""
    prompts: list[Optional[dict[str, Any]]] = []
    for request in requests:
        prompt = build_prompt(processor, request)
        length = prompt_tokens(processor, prompt, limits)
        if length + max_new_tokens > max_model_len:
            log.warning("request %r: prompt of %d tokens + max_new_tokens %d exceeds max_model_len %d; refused",
                        request.key, length, max_new_tokens, max_model_len)  # fmt: skip
            prompt = None
        prompts.append(prompt)
    return prompts


def sampling_kwargs(n: int, temperature: float, top_p: float, max_new_tokens: int, seed: Optional[int]) -> dict[str, Any]:
    """``vllm.SamplingParams`` for one request: every sampling parameter explicit.

    Greedy asks for one completion (older vLLM refuses ``n`` > 1 without sampling; the caller copies
    it). ``seed`` is the request's own (:func:`~inference.base.request_seed`); vLLM seeds the j-th
    child ``seed + j``.
    """
    greedy = temperature == 0
    return {"n": 1 if greedy else n, "temperature": temperature, "top_p": top_p, "top_k": TOP_K_OFF, "min_p": 0.0,
            "repetition_penalty": 1.0, "max_tokens": max_new_tokens, "seed": seed}  # fmt: skip


def engine_kwargs(
    model_path: Union[str, Path],
    *,
    image_processor: Any,
    max_pixels: Optional[int],
    max_new_tokens: int,
    max_model_len: Optional[int] = None,
    tensor_parallel_size: int = 1,
    gpu_memory_utilization: float = 0.9,
    dtype: str = "auto",
) -> dict[str, Any]:
    """``vllm.LLM`` arguments: both pixel limits for the processor, and ``max_model_len`` sized from
    the pixel budget and the token limits unless given."""
    limits = effective_pixel_limits(image_processor, max_pixels)
    if max_model_len is None:
        factor = image_processor.patch_size * image_processor.merge_size
        max_model_len = size_max_model_len(max_new_tokens, limits["max_pixels"], patch_factor=factor)
    return {
        "model": str(model_path),
        "tensor_parallel_size": tensor_parallel_size,
        "gpu_memory_utilization": gpu_memory_utilization,
        "max_model_len": max_model_len,
        "dtype": dtype,
        "mm_processor_kwargs": pixel_limits(image_processor, max_pixels) or None,
        "limit_mm_per_prompt": {"image": MAX_IMAGES},
    }


class VLLMBackend:
    """Offline vLLM generation.

    Parameters
    ----------
    model_path : str or Path
        Model directory (or hub id).
    tensor_parallel_size : int, default=1
    gpu_memory_utilization : float, default=0.9
    max_model_len : int, optional
        Default: sized by :func:`size_max_model_len` from the pixel budget, ``max_new_tokens`` and
        a 4,096-token text allowance (about 9.5K tokens at build-rl's pixel budget, 25K at Qwen2.5-VL's
        own). A prompt that does not fit with ``max_new_tokens`` is refused alone.
    max_pixels : int, optional
        Cap on image pixels (fewer visual tokens), passed with the processor's ``min_pixels``;
        default: the processor's own.
    max_new_tokens : int, default=4096
        The decoding budget ``max_model_len`` is sized for.
    dtype : str, default="auto"
    """

    def __init__(
        self,
        model_path: Union[str, Path],
        *,
        tensor_parallel_size: int = 1,
        gpu_memory_utilization: float = 0.9,
        max_model_len: Optional[int] = None,
        max_pixels: Optional[int] = None,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        dtype: str = "auto",
    ) -> None:
        try:
            import vllm
        except ImportError as err:
            raise ValueError(
                "the vllm backend needs the vllm package (GPU only); install it on a GPU host, or use "
                "--backend hf (transformers) or --backend openai against a running `vllm serve`"
            ) from err
        from transformers import AutoProcessor

        self.processor = AutoProcessor.from_pretrained(str(model_path))
        self.limits = effective_pixel_limits(self.processor.image_processor, max_pixels)
        kwargs = engine_kwargs(
            model_path, image_processor=self.processor.image_processor, max_pixels=max_pixels,
            max_new_tokens=max_new_tokens, max_model_len=max_model_len, tensor_parallel_size=tensor_parallel_size,
            gpu_memory_utilization=gpu_memory_utilization, dtype=dtype,
        )  # fmt: skip
        self.max_model_len = kwargs["max_model_len"]
        self.llm = vllm.LLM(**kwargs)
        self._sampling_params = vllm.SamplingParams

    def generate(
        self,
        requests: Sequence[GenerationRequest],
        *,
        n: int = 1,
        temperature: float = 0.0,
        top_p: float = 1.0,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        seed: Optional[int] = None,
    ) -> list[list[Generation]]:
        """See :class:`~inference.base.InferenceBackend`.

        ``num_tokens`` is ``len(token_ids)`` of each completion (EOS included), ``finish_reason``
        vLLM's. A request whose prompt does not fit ``max_model_len`` with ``max_new_tokens`` gets
        ``n`` empty generations with ``finish_reason`` ``prompt_too_long``; the others run.
        """
        check_sampling(n, temperature, top_p, max_new_tokens)
        prompts = fit_prompts(self.processor, requests, limits=self.limits, max_model_len=self.max_model_len,
                              max_new_tokens=max_new_tokens)  # fmt: skip
        fit = [i for i, prompt in enumerate(prompts) if prompt is not None]
        params = [self._sampling_params(**sampling_kwargs(n, temperature, top_p, max_new_tokens, request_seed(seed, i, n)))
                  for i in fit]  # fmt: skip
        outputs = self.llm.generate([prompts[i] for i in fit], params, use_tqdm=False) if fit else []
        results = [[Generation("", 0, FINISH_PROMPT_TOO_LONG)] * n for _ in requests]
        for i, out in zip(fit, outputs):
            gens = [Generation(c.text, len(c.token_ids), c.finish_reason) for c in out.outputs]
            results[i] = gens * n if len(gens) == 1 else gens
        return results
