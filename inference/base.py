"""The inference interface shared by evaluation, ``moderate`` and hard-sample mining.

A backend turns guard prompts into generations. Callers never build prompts themselves: a
:class:`GenerationRequest` carries the ``[system, user]`` messages from :mod:`data_prep.prompt`
(with ``<image>`` placeholders) and the images that fill them, so every backend sees exactly the
prompt the checkpoints were trained on. Outputs are parsed elsewhere, only by
:func:`rewards.grammar.parse_verdict`.

This module imports nothing heavy (Pillow through the image helpers, no torch, vLLM or OpenAI
client), so evaluation and mining code can import the interface cheaply.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable, Optional, Protocol, Sequence, runtime_checkable

from data_prep.images import load_image as load_image_for_row
from data_prep.prompt import IMAGE_PLACEHOLDER, to_structured_content
from data_prep.record import GuardRecord
from data_prep.transcript import record_messages

#: The paper's decoding budget for evaluation (docs/design.md §8).
DEFAULT_MAX_NEW_TOKENS = 4096


@dataclass(frozen=True)
class GenerationRequest:
    """One prompt to complete.

    Attributes
    ----------
    messages : list of dict
        ``[system, user]`` chat messages with string content and ``<image>`` placeholders, as built
        by :func:`data_prep.prompt.build_messages`.
    images : tuple
        One image per ``<image>`` placeholder, in order: a ``PIL.Image``, encoded bytes, or a path.
    key : str
        The caller's id (usually the record id), echoed back so results can be matched.
    """

    messages: list
    images: tuple = ()
    key: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "images", tuple(self.images))
        n_placeholders = sum(
            m["content"].count(IMAGE_PLACEHOLDER) for m in self.messages if isinstance(m.get("content"), str)
        )
        if n_placeholders != len(self.images):
            raise ValueError(
                f"request {self.key!r}: {n_placeholders} '<image>' placeholder(s) but {len(self.images)} image(s)"
            )


#: ``Generation.finish_reason`` values: an end-of-sequence token ended it, the token limit cut it
#: (as servers report them), or the prompt alone did not fit the model's context (vLLM offline).
FINISH_STOP = "stop"
FINISH_LENGTH = "length"
FINISH_PROMPT_TOO_LONG = "prompt_too_long"


@dataclass(frozen=True)
class Generation:
    """One completion.

    ``num_tokens`` is the number of generated tokens (0 when the backend cannot tell, e.g. a server
    that reports no usage). ``finish_reason`` says why it ended (:data:`FINISH_STOP`,
    :data:`FINISH_LENGTH`, :data:`FINISH_PROMPT_TOO_LONG`; None when the backend cannot tell): an
    output cut at the token limit is usually unparseable, and is counted apart from the model's own
    format failures.
    """

    text: str
    num_tokens: int
    finish_reason: Optional[str] = None

    @property
    def truncated(self) -> bool:
        """Cut off at the token limit."""
        return self.finish_reason == FINISH_LENGTH


@runtime_checkable
class InferenceBackend(Protocol):
    """What every backend offers: one call, many prompts, ``n`` samples each."""

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
        """One list of ``n`` generations per request, in request order.

        ``temperature == 0`` means greedy decoding (then ``n`` copies are identical).
        """
        ...


def request_from_record(record: GuardRecord) -> GenerationRequest:
    """The guard prompt for a record, exactly as the RL/SFT parquet holds it (a concatenation keeps
    its two-block transcript; see :func:`data_prep.transcript.record_messages`)."""
    if len(record.images) > 1:
        raise ValueError(f"record {record.id!r}: the guard takes at most one image, got {len(record.images)}")
    messages = record_messages(record)
    return GenerationRequest(messages=messages, images=record.images, key=record.id)


def load_image(image: Any, *, key: str = "") -> Any:
    """An upright RGB ``PIL.Image`` from a PIL image, encoded bytes, a ``{"bytes"|"path"}`` dict or a path.

    Delegates to :func:`data_prep.images.load_image` (decompression-bomb guard, EXIF orientation,
    transparency on white), so the guard sees images exactly as the training data prepared them.
    A missing or corrupt image raises ``ValueError`` naming the request: never skipped silently.
    """
    return load_image_for_row(image, row_id=key or "?", field="images")


def check_sampling(n: int, temperature: float, top_p: float, max_new_tokens: int) -> None:
    """Reject bad sampling options early, naming the argument."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")


def chat_prompt(processor: Any, request: GenerationRequest) -> str:
    """The exact prompt string a local model sees: its processor's chat template over the request's
    messages (``<image>`` split into image parts where it stands), with the generation prompt.

    Shared by the ``hf`` and ``vllm`` backends, so both render byte-identical prompts.
    """
    return processor.apply_chat_template(
        to_structured_content(request.messages), tokenize=False, add_generation_prompt=True
    )


def request_seed(seed: Optional[int], index: int, n: int) -> Optional[int]:
    """The seed of request ``index`` in a call with base ``seed`` and ``n`` samples per request.

    Request ``i`` owns the seeds ``seed + i*n`` to ``seed + i*n + n - 1``: its first sample uses the
    first (vLLM seeds the j-th child of a request ``seed + j``; the openai backend asks a server that
    returned fewer choices again with the next unused one), so no two samples of one call share a
    seed. Callers that split work into calls advance ``seed`` by ``requests * n`` per call.
    """
    return None if seed is None else seed + index * n


def own_pixel_limits(image_processor: Any) -> dict[str, int]:
    """A Qwen2-VL-family image processor's own ``min_pixels`` / ``max_pixels`` (its ``size``)."""
    size = image_processor.size
    get = size.get if isinstance(size, dict) else (lambda key: getattr(size, key, None))
    return {"min_pixels": int(get("shortest_edge")), "max_pixels": int(get("longest_edge"))}


def pixel_limits(image_processor: Any, max_pixels: Optional[int]) -> dict[str, int]:
    """``min_pixels`` / ``max_pixels`` to hand a Qwen2-VL-family image processor at call time.

    transformers 5 applies a call-time ``max_pixels`` only together with ``min_pixels`` (alone it is
    silently ignored and the processor's own ``size`` applies), so both are passed: the cap, and the
    processor's own lower bound (never above the cap). Empty when ``max_pixels`` is None.
    """
    if max_pixels is None:
        return {}
    if max_pixels < 1:
        raise ValueError(f"max_pixels must be >= 1, got {max_pixels}")
    return {"min_pixels": min(own_pixel_limits(image_processor)["min_pixels"], max_pixels), "max_pixels": max_pixels}


# name -> "module:factory"; imported lazily so choosing "openai" never imports torch.
_BACKENDS: dict[str, str] = {
    "hf": "inference.hf:HFBackend",
    "openai": "inference.openai_chat:OpenAIBackend",
    "vllm": "inference.vllm_offline:VLLMBackend",
}

BACKEND_NAMES = tuple(_BACKENDS)


def register_backend(name: str, target: str) -> None:
    """Add a backend as ``"package.module:Factory"`` (imported when first chosen)."""
    if ":" not in target:
        raise ValueError(f"backend target must look like 'module:Factory', got {target!r}")
    _BACKENDS[name] = target


def get_backend(name: str, **options: Any) -> InferenceBackend:
    """Build the backend ``name`` (``hf``, ``openai``, ``vllm``) with its keyword options.

    Raises ``ValueError`` listing the known names for an unknown one.
    """
    if name not in _BACKENDS:
        raise ValueError(f"unknown inference backend {name!r}; choose one of: {', '.join(sorted(_BACKENDS))}")
    module_name, _, attr = _BACKENDS[name].partition(":")
    factory: Callable[..., InferenceBackend] = getattr(importlib.import_module(module_name), attr)
    return factory(**options)
