"""The ``vllm`` backend: offline ``vllm.LLM`` on GPU, the fastest way to score all 14 benchmarks.

vLLM is imported only when this backend is built, so the rest of the harness runs without it (and
on CPU). The prompt string is rendered by the model's own HF processor chat template, exactly as in
the ``hf`` backend, and handed to ``LLM.generate`` with the images as ``multi_modal_data``; that
way all backends see byte-identical prompts, and the image tokens stand where ``<image>`` stands.

Not exercised by the CPU test suite (vLLM needs a GPU); its prompt rendering is shared with and
tested through the ``hf`` backend.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence, Union

from data_prep.prompt import to_structured_content
from inference.base import (
    DEFAULT_MAX_NEW_TOKENS,
    Generation,
    GenerationRequest,
    check_sampling,
    load_image,
)


class VLLMBackend:
    """Offline vLLM generation.

    Parameters
    ----------
    model_path : str or Path
        Model directory (or hub id).
    tensor_parallel_size : int, default=1
    gpu_memory_utilization : float, default=0.9
    max_model_len : int, default=8192
        Prompt (up to ~3K tokens with an image) plus the 4096-token decoding budget.
    max_pixels : int, optional
        Passed as ``mm_processor_kwargs`` to cap visual tokens; default: the processor's own.
    dtype : str, default="auto"
    """

    def __init__(
        self,
        model_path: Union[str, Path],
        *,
        tensor_parallel_size: int = 1,
        gpu_memory_utilization: float = 0.9,
        max_model_len: int = 8192,
        max_pixels: Optional[int] = None,
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
        mm_kwargs = {"max_pixels": max_pixels} if max_pixels is not None else None
        self.llm = vllm.LLM(
            model=str(model_path),
            tensor_parallel_size=tensor_parallel_size,
            gpu_memory_utilization=gpu_memory_utilization,
            max_model_len=max_model_len,
            dtype=dtype,
            mm_processor_kwargs=mm_kwargs,
            limit_mm_per_prompt={"image": 1},
        )
        self._sampling_params = vllm.SamplingParams

    def _prompt(self, request: GenerationRequest) -> dict[str, Any]:
        text = self.processor.apply_chat_template(
            to_structured_content(request.messages), tokenize=False, add_generation_prompt=True
        )
        prompt: dict[str, Any] = {"prompt": text}
        if request.images:
            images = [load_image(img, key=request.key) for img in request.images]
            prompt["multi_modal_data"] = {"image": images[0] if len(images) == 1 else images}
        return prompt

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

        ``num_tokens`` is ``len(token_ids)`` of each completion (EOS included). With ``seed``,
        request ``i`` samples with ``seed + i``.
        """
        check_sampling(n, temperature, top_p, max_new_tokens)
        # Greedy decoding gives n identical completions; older vLLM rejects n > 1 when greedy.
        greedy = temperature == 0
        params = [
            self._sampling_params(
                n=1 if greedy else n,
                temperature=temperature,
                top_p=top_p,
                max_tokens=max_new_tokens,
                seed=None if seed is None else seed + i,
            )
            for i in range(len(requests))
        ]
        outputs = self.llm.generate([self._prompt(r) for r in requests], params, use_tqdm=False)
        results = [[Generation(c.text, len(c.token_ids)) for c in out.outputs] for out in outputs]
        return [gens * n for gens in results] if greedy else results
