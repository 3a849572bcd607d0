"""The synthesis prompt: a text file the user can replace, rendered per record.

Format: an optional ``[system]`` section and a ``[user]`` section, each introduced by that header
alone on a line; a file without headers is the user message alone. Placeholders use
:class:`string.Template` syntax (``${transcript}``), chosen over ``str.format`` because prompts
are full of braces (JSON examples) that ``format`` would take for fields. A placeholder that is not
in :data:`FIELDS` fails when the template is loaded, not after a thousand paid requests.

The record's images are attached to the user message (before its text) by the engine; the
template only says where they belong (``<image>`` in ``${transcript}``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from string import Template
from typing import Optional

from data_prep.prompt import INSTRUCTION, build_transcript
from data_prep.record import GuardRecord
from rewards.grammar import NO_RESPONSE, format_verdict

#: The template shipped with the package (``data_prep/templates/synthesis_prompt.txt``).
DEFAULT_TEMPLATE_NAME = "synthesis_prompt.txt"

#: Every placeholder a template may use, and what it becomes.
FIELDS: dict[str, str] = {
    "instruction": "the guard's system instruction (data_prep.prompt.INSTRUCTION)",
    "transcript": "the guard's user turn: 'Human user: … AI assistant: …', with <image> where the image goes",
    "request": "the user's request text ('' for an image-only request)",
    "response": "the assistant's response, or 'None' when there is none",
    "request_label": "the correct request label: harmful or unharmful",
    "response_label": "the correct response label: harmful, unharmful or None",
    "expected_result": "the correct result block body: 'Request: …\\nResponse: …'",
    "modality": "text, image or text_image",
    "image_note": "a line saying an image is attached and where it belongs ('' for text-only records)",
}

_IMAGE_NOTE = (
    "The image attached to this message is part of the human user's request; "
    "it stands where <image> appears in the transcript.\n"
)
_SECTION = re.compile(r"^\[(system|user)\][ \t]*$", re.MULTILINE)


def template_fields(record: GuardRecord) -> dict[str, str]:
    """The values of :data:`FIELDS` for one record."""
    has_image = bool(record.images)
    return {
        "instruction": INSTRUCTION,
        "transcript": build_transcript(record.request, record.response, has_image=has_image),
        "request": record.request,
        "response": "None" if record.response is None else record.response,
        "request_label": record.request_label,
        "response_label": "None" if record.response_label == NO_RESPONSE else record.response_label,
        "expected_result": format_verdict(record.request_label, record.response_label),
        "modality": record.modality,
        "image_note": _IMAGE_NOTE if has_image else "",
    }


@dataclass(frozen=True)
class PromptTemplate:
    """A parsed template: system text (optional) and user text, with ``${field}`` placeholders."""

    user: str
    system: Optional[str] = None
    #: where it came from, for error messages
    origin: str = "<string>"

    def __post_init__(self) -> None:
        for part, text in (("system", self.system), ("user", self.user)):
            if text is None:
                continue
            template = Template(text)
            if not template.is_valid():
                raise ValueError(f"prompt template {self.origin}: invalid placeholder syntax in the [{part}] section")
            unknown = sorted(set(template.get_identifiers()) - set(FIELDS))
            if unknown:
                raise ValueError(
                    f"prompt template {self.origin}: unknown placeholder(s) {', '.join(unknown)} in the [{part}] "
                    f"section; available: {', '.join(FIELDS)}"
                )
        if not self.user.strip():
            raise ValueError(f"prompt template {self.origin}: the [user] section is empty")

    @classmethod
    def parse(cls, text: str, *, origin: str = "<string>") -> "PromptTemplate":
        """Split ``text`` into its ``[system]`` / ``[user]`` sections (see the module docstring)."""
        headers = list(_SECTION.finditer(text))
        if not headers:
            return cls(user=text, origin=origin)
        if text[: headers[0].start()].strip():
            raise ValueError(f"prompt template {origin}: text before the first [system]/[user] header")
        sections: dict[str, str] = {}
        for i, header in enumerate(headers):
            name = header.group(1)
            if name in sections:
                raise ValueError(f"prompt template {origin}: the [{name}] section appears twice")
            end = headers[i + 1].start() if i + 1 < len(headers) else len(text)
            sections[name] = text[header.end():end].strip("\n")
        if "user" not in sections:
            raise ValueError(f"prompt template {origin}: no [user] section")
        return cls(user=sections["user"], system=sections.get("system"), origin=origin)

    @classmethod
    def load(cls, path: Optional[Path] = None) -> "PromptTemplate":
        """The template at ``path``, or the default one shipped with the package."""
        if path is None:
            source = resources.files("data_prep") / "templates" / DEFAULT_TEMPLATE_NAME
            return cls.parse(source.read_text(encoding="utf-8"), origin=f"(default) {DEFAULT_TEMPLATE_NAME}")
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"prompt template not found: {path}")
        return cls.parse(path.read_text(encoding="utf-8"), origin=str(path))

    def render(self, record: GuardRecord) -> tuple[Optional[str], str]:
        """``(system, user)`` texts for ``record``."""
        values = template_fields(record)
        system = Template(self.system).substitute(values) if self.system is not None else None
        return system, Template(self.user).substitute(values)
