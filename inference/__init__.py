"""Inference backends for the guard: transformers (``hf``), an OpenAI-compatible server
(``openai``), and offline vLLM (``vllm``), behind one interface (:mod:`.base`), plus
:mod:`.moderate` (one input in, reasoning and labels out).

This layer sits on ``data_prep`` (prompts, records, images) and is used by ``evaluation``.

>>> from inference import get_backend, request_from_record
>>> # backend = get_backend("hf", model_path="path/to/model")
>>> # [[gen]] = backend.generate([request_from_record(record)])
"""

from inference.base import (
    BACKEND_NAMES,
    DEFAULT_MAX_NEW_TOKENS,
    FINISH_LENGTH,
    FINISH_PROMPT_TOO_LONG,
    FINISH_STOP,
    Generation,
    GenerationRequest,
    InferenceBackend,
    get_backend,
    load_image,
    register_backend,
    request_from_record,
)

__all__ = [
    "BACKEND_NAMES",
    "DEFAULT_MAX_NEW_TOKENS",
    "FINISH_LENGTH",
    "FINISH_PROMPT_TOO_LONG",
    "FINISH_STOP",
    "Generation",
    "GenerationRequest",
    "InferenceBackend",
    "get_backend",
    "load_image",
    "register_backend",
    "request_from_record",
]
