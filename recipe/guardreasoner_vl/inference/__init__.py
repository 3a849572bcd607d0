"""Inference backends for the guard: transformers (``hf``), an OpenAI-compatible server
(``openai``), and offline vLLM (``vllm``), behind one interface (:mod:`.base`).

>>> from recipe.guardreasoner_vl.inference import get_backend, request_from_record
>>> # backend = get_backend("hf", model_path="path/to/model")
>>> # [[gen]] = backend.generate([request_from_record(record)])
"""

from recipe.guardreasoner_vl.inference.base import (
    BACKEND_NAMES,
    DEFAULT_MAX_NEW_TOKENS,
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
    "Generation",
    "GenerationRequest",
    "InferenceBackend",
    "get_backend",
    "load_image",
    "register_backend",
    "request_from_record",
]
