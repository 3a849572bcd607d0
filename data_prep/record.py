"""One labelled guard sample, whatever it was read from and whatever it is written to.

Readers produce :class:`GuardRecord`; writers, concatenation, mining, synthesis and evaluation
consume it. Labels are validated on construction so that a bad label fails at the row that carries
it, not hours later in a reward function.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Optional, Union

from rewards.grammar import NO_RESPONSE, format_verdict, normalize_label

#: An image as a reader leaves it: a filesystem path, raw encoded bytes, or a PIL image.
ImageRef = Union[str, bytes, Any]

TEXT, IMAGE, TEXT_IMAGE = "text", "image", "text_image"
#: meta key listing label slots the source does not provide (filled with a placeholder, never
#: trained on or scored): e.g. a response-only benchmark gives no request label.
UNLABELLED_META_KEY = "unlabelled"
#: ``meta`` key of a benchmark record: the tasks (``prompt``/``response``) it is scored on.
TASKS_META_KEY = "tasks"
MODALITIES = (TEXT, IMAGE, TEXT_IMAGE)


@dataclass(frozen=True)
class GuardRecord:
    """A labelled sample.

    Attributes
    ----------
    id : str
        Stable, unique within a source; used for resuming, image matching and ``concat_of``.
    source : str
        Dataset or benchmark name; becomes verl's ``data_source``.
    request : str
        The user's request text ("" for an image-only request).
    images : tuple
        Zero or one image in practice (the guard takes one); kept a tuple so writers stay general.
    response : str or None
        The AI assistant's response; None when the sample has no response.
    request_label : str
        ``harmful`` or ``unharmful``.
    response_label : str
        ``harmful``, ``unharmful``, or ``none`` when there is no response.
    reasoning : str or None
        The reasoning target (the full guard output, ``<think>…</think><result>…</result>``), if any.
    concat_of : tuple of str
        Ids of the two parents for a safety-aware concatenation, empty otherwise.
    """

    id: str
    source: str
    request: str
    request_label: str
    response: Optional[str] = None
    response_label: str = NO_RESPONSE
    images: tuple = ()
    reasoning: Optional[str] = None
    concat_of: tuple = ()
    meta: dict = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if not self.id:
            raise ValueError("record has an empty id")
        object.__setattr__(self, "request", self.request or "")
        object.__setattr__(self, "images", tuple(self.images))
        object.__setattr__(self, "concat_of", tuple(self.concat_of))
        try:
            object.__setattr__(self, "request_label", normalize_label(self.request_label, task="request"))
            object.__setattr__(self, "response_label", normalize_label(self.response_label, task="response"))
        except ValueError as err:
            raise ValueError(f"record {self.id!r}: {err}") from None
        if not self.request.strip() and not self.images:
            raise ValueError(f"record {self.id!r}: field 'request' is empty and there is no image")
        if self.response is None and self.response_label != NO_RESPONSE:
            raise ValueError(
                f"record {self.id!r}: field 'response_label' is {self.response_label!r} but there is no response"
            )
        if (
            self.response is not None
            and self.response_label == NO_RESPONSE
            and "response" not in self.meta.get(UNLABELLED_META_KEY, ())
        ):
            # "none" would be scored as unharmful: a harmful response would silently train as harmless.
            raise ValueError(
                f"record {self.id!r}: field 'response_label' is missing (none) but the record has a response; "
                "label it harmful or unharmful"
            )

    @property
    def modality(self) -> str:
        """``text``, ``image`` (image only) or ``text_image``."""
        if not self.images:
            return TEXT
        return TEXT_IMAGE if self.request.strip() else IMAGE

    @property
    def has_response(self) -> bool:
        return self.response is not None

    @property
    def ground_truth(self) -> str:
        """The labels in the result grammar: what the reward scores against."""
        return format_verdict(self.request_label, self.response_label)

    def evolve(self, **changes: Any) -> "GuardRecord":
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)
