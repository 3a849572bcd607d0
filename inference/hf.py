"""The ``hf`` backend: transformers ``generate`` on CPU or GPU.

Slow next to vLLM (~0.2 s/query at batch 128 on an H200 against ~36 ms with vLLM; see
docs/gpu_guide.md) but it runs anywhere transformers runs, so it serves tests, CPU demos, ``moderate`` and small
jobs. Prompts go through the model's own processor: ``processor.apply_chat_template`` on
:func:`data_prep.prompt.to_structured_content`, so the image tokens land exactly where ``<image>``
stands in the transcript, as at training time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence, Union

from inference.base import (
    DEFAULT_MAX_NEW_TOKENS,
    FINISH_LENGTH,
    FINISH_STOP,
    Generation,
    GenerationRequest,
    chat_prompt,
    check_sampling,
    load_image,
    pixel_limits,
    request_seed,
)


def sampling_kwargs(n: int, temperature: float, top_p: float) -> dict[str, Any]:
    """``generate`` options that set every sampling parameter, so none comes from the checkpoint.

    transformers 5 fills every option left unset (None) from the model's ``generation_config.json``:
    a Qwen2-VL-family Instruct checkpoint would bring ``repetition_penalty`` 1.05 (applied in greedy
    decoding too) and ``top_k`` 1 (k identical samples), and transformers' own default ``top_k`` is 50,
    which vLLM does not apply. Greedy: one sequence (copied ``n`` times by the caller).
    """
    if temperature == 0:
        return {"do_sample": False, "num_return_sequences": 1, "repetition_penalty": 1.0}
    return {"do_sample": True, "num_return_sequences": n, "temperature": temperature, "top_p": top_p,
            "top_k": 0, "min_p": 0.0, "repetition_penalty": 1.0}  # fmt: skip


class HFBackend:
    """Batched transformers generation with left padding.

    Parameters
    ----------
    model_path : str or Path
        A local directory (or hub id, if the hub is reachable) holding the model, tokenizer and
        processor.
    device : str, default="auto"
        ``"auto"`` picks ``cuda`` when available, else ``cpu``.
    dtype : str, default="auto"
        ``"auto"`` is bfloat16 on GPU and float32 on CPU (CPU bf16 matmuls are slow and lossy).
    batch_size : int, default=8
        Prompts per ``generate`` call. Each call pads to its longest prompt.
    max_pixels : int, optional
        Cap on image pixels handed to the processor (fewer visual tokens); default: the
        processor's own setting, as in the paper's evaluation.
    attn_implementation : str, default="sdpa"
        Passed to ``from_pretrained``; flash-attn is not required.
    """

    def __init__(
        self,
        model_path: Union[str, Path],
        *,
        device: str = "auto",
        dtype: str = "auto",
        batch_size: int = 8,
        max_pixels: Optional[int] = None,
        attn_implementation: str = "sdpa",
    ) -> None:
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        path = Path(model_path)
        if path.exists() and not (path / "config.json").exists():
            raise FileNotFoundError(f"model directory {path} has no config.json")
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if dtype == "auto":
            torch_dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
        else:
            torch_dtype = getattr(torch, dtype, None)
            if not isinstance(torch_dtype, torch.dtype):
                raise ValueError(f"unknown dtype {dtype!r}; use auto, float32, bfloat16 or float16")
        self.device = device
        self.batch_size = batch_size
        self.max_pixels = max_pixels
        self.processor = AutoProcessor.from_pretrained(str(model_path))
        # Left padding: every prompt ends where generation starts, so a batch decodes as one block.
        self.processor.tokenizer.padding_side = "left"
        self.model = AutoModelForImageTextToText.from_pretrained(
            str(model_path), dtype=torch_dtype, attn_implementation=attn_implementation
        ).to(device)
        self.model.eval()
        tok = self.processor.tokenizer
        eos = self.model.generation_config.eos_token_id
        self._eos_ids = set(eos if isinstance(eos, (list, tuple)) else [eos] if eos is not None else [])
        if tok.eos_token_id is not None:
            self._eos_ids.add(tok.eos_token_id)
        self._pad_id = tok.pad_token_id if tok.pad_token_id is not None else next(iter(self._eos_ids), 0)

    def prompt_text(self, request: GenerationRequest) -> str:
        """The exact prompt string the model sees (chat template applied, generation prompt added)."""
        return chat_prompt(self.processor, request)

    def _encode(self, batch: Sequence[GenerationRequest]) -> Any:
        texts = [self.prompt_text(r) for r in batch]
        images = [load_image(img, key=r.key) for r in batch for img in r.images]
        kwargs: dict[str, Any] = {"text": texts, "padding": True, "return_tensors": "pt"}
        if images:
            kwargs["images"] = images
            kwargs.update(pixel_limits(self.processor.image_processor, self.max_pixels))
        return self.processor(**kwargs).to(self.device)

    def _ending(self, ids: Any) -> tuple[int, str]:
        """Generated tokens up to and including the first end-of-sequence token (as vLLM counts),
        and why generation ended."""
        n = 0
        for token in ids.tolist():
            n += 1
            if token in self._eos_ids:
                return n, FINISH_STOP
        return n, FINISH_LENGTH  # no EOS: the budget ran out and every position is a generated token

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

        Greedy decoding (``temperature == 0``) runs once and repeats the result ``n`` times. With
        ``seed`` set, the torch RNG is reseeded per batch (with the seed of its first request, see
        :func:`~inference.base.request_seed`), so a run is reproducible on the same hardware
        whatever happened before it.
        """
        import torch
        from transformers import set_seed

        check_sampling(n, temperature, top_p, max_new_tokens)
        options = sampling_kwargs(n, temperature, top_p)
        per_row = options["num_return_sequences"]
        out: list[list[Generation]] = []
        for start in range(0, len(requests), self.batch_size):
            batch = list(requests[start : start + self.batch_size])
            inputs = self._encode(batch)
            if seed is not None:
                set_seed(request_seed(seed, start, n))
            with torch.inference_mode():
                sequences = self.model.generate(
                    **inputs, **options, max_new_tokens=max_new_tokens, pad_token_id=self._pad_id
                )
            new_tokens = sequences[:, inputs["input_ids"].shape[1] :].cpu()
            texts = self.processor.batch_decode(new_tokens, skip_special_tokens=True)
            for i in range(len(batch)):
                rows = range(i * per_row, (i + 1) * per_row)
                gens = [Generation(texts[j], *self._ending(new_tokens[j])) for j in rows]
                out.append(gens * n if per_row == 1 else gens)
        return out
