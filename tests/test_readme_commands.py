"""Commands shown in README.md and docs/*.md point at things that exist.

Every shell line of a fenced code block (bash, sh, shell, console or no language) is split into
commands, and each command is checked against the repository:

- ``guardreasoner-vl <cmd>``: ``<cmd>`` is a real subcommand (``cli.COMMANDS``);
- ``bash examples/...``, ``./examples/....sh`` or any ``examples/....sh`` word: the file exists;
- ``python -m <module>`` (any python, ``torchrun ... -m``): the module is importable;
- ``make <target>``: the target is defined in the Makefile.

The docs are collected when the test runs, so new pages are covered without editing this file.
"""

from __future__ import annotations

import importlib.util
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest

from cli import main as cli

REPO_ROOT = Path(__file__).resolve().parents[1]
SHELL_LANGS = {"", "bash", "sh", "shell", "console", "zsh"}
FENCE = re.compile(r"^(\s*)(```|~~~)\s*([\w+-]*)")
SEPARATORS = {"&&", "||", ";", "|", "&"}
PYTHON = re.compile(r"(^|/)python(3(\.\d+)?)?$")
WRAPPERS = {"env", "time", "exec", "nohup", "sudo", "uv", "run"}


@dataclass(frozen=True)
class Command:
    """One command of a doc's code block: where it is and its words."""

    doc: str
    line: int
    words: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.doc}:{self.line}: {' '.join(self.words)}"


def shell_lines(markdown: str) -> list[tuple[int, str]]:
    """(line number, logical line) of every shell code block; continuations joined, prompts and comments dropped."""
    out: list[tuple[int, str]] = []
    in_block, lang, pending, start = False, "", "", 0
    for number, raw in enumerate(markdown.splitlines(), start=1):
        fence = FENCE.match(raw)
        if fence:
            in_block, lang = (not in_block, fence.group(3).lower()) if not in_block else (False, "")
            pending = ""
            continue
        if not in_block or lang not in SHELL_LANGS:
            continue
        text = raw.strip()
        if not pending:
            start = number
            if text.startswith("$ "):
                text = text[2:]
            elif lang == "console":  # console blocks: only prompted lines are commands
                continue
        if text.endswith("\\"):
            pending += text[:-1] + " "
            continue
        logical = (pending + text).strip()
        pending = ""
        if logical and not logical.startswith("#"):
            out.append((start, logical))
    return out


def split_commands(line: str) -> list[list[str]]:
    """Shell words of each command of a line (split at ;, &&, ||, |, &), leading VAR=value and wrappers removed."""
    try:
        lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|")
        lexer.whitespace_split = True
        lexer.commenters = "#"
        words = list(lexer)
    except ValueError:  # an unbalanced quote in prose-like examples: fall back to plain words
        words = line.split()
    commands, current = [], []
    for word in words:
        if word in SEPARATORS:
            commands.append(current)
            current = []
        else:
            current.append(word)
    commands.append(current)
    cleaned = []
    for words in commands:
        while words and (re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]) or words[0] in WRAPPERS):
            words = words[1:]
        if words:
            cleaned.append(words)
    return cleaned


def collect(docs: list[Path]) -> list[Command]:
    found = []
    for doc in docs:
        name = str(doc.relative_to(REPO_ROOT)) if doc.is_relative_to(REPO_ROOT) else str(doc)
        for number, line in shell_lines(doc.read_text(encoding="utf-8")):
            found.extend(Command(name, number, tuple(words)) for words in split_commands(line))
    return found


def make_targets(makefile: Path) -> set[str]:
    targets = set()
    for line in makefile.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-/ ]+):(?!=)", line)
        if match and not line.startswith("\t"):
            targets.update(t for t in match.group(1).split() if not t.startswith("."))
    return targets


def _importable(module: str) -> bool:
    """True if ``module`` can be found (parents are imported, the module itself is not run)."""
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:  # a missing parent package
        return False


def problems(command: Command, *, root: Path = REPO_ROOT, targets: set[str] | None = None) -> list[str]:
    """What in ``command`` does not exist (empty when everything does)."""
    words = list(command.words)
    found: list[str] = []
    program = words[0]

    if Path(program).name == "guardreasoner-vl":
        sub = next((w for w in words[1:] if not w.startswith("-")), None)
        if sub is not None and sub not in cli.COMMANDS:
            found.append(f"'guardreasoner-vl {sub}' is not a subcommand ({', '.join(sorted(cli.COMMANDS))})")

    for word in words:
        path = word[2:] if word.startswith("./") else word
        if re.match(r"^examples/[\w./-]+\.sh$", path) and not (root / path).is_file():
            found.append(f"{path} does not exist")

    is_python = PYTHON.search(program) is not None
    if is_python or Path(program).name == "torchrun":
        for i, word in enumerate(words[1:-1], start=1):
            if word == "-m":
                module = words[i + 1]
                if not _importable(module):
                    found.append(f"python module {module} is not importable")
                break

    if program == "make":
        known = targets if targets is not None else make_targets(root / "Makefile")
        for word in words[1:]:
            if word.startswith("-") or "=" in word:
                continue
            if word not in known:
                found.append(f"make target {word!r} is not in the Makefile")
    return found


def _docs() -> list[Path]:
    return sorted(p for p in [REPO_ROOT / "README.md", *(REPO_ROOT / "docs").glob("*.md")] if p.is_file())


DOC_COMMANDS = collect(_docs())
CHECKED = [c for c in DOC_COMMANDS if (
    Path(c.words[0]).name in {"guardreasoner-vl", "torchrun", "make"}
    or PYTHON.search(c.words[0])
    or any("examples/" in w for w in c.words)
)]


@pytest.mark.parametrize("command", CHECKED, ids=str)
def test_documented_command_exists(command: Command):
    assert problems(command) == []


def test_docs_have_commands_to_check():
    assert CHECKED, "no checkable command found in README.md or docs/*.md"


# ------------------------------------------------------------------------------------ the checker itself
SAMPLE = """
Intro text with `guardreasoner-vl nonsense` inline (not a code block).

```bash
# a comment
MODEL_SIZE=7b bash examples/sft/run_sft.sh \\
    data.max_length=2048
guardreasoner-vl build-sft data/in -o out.parquet && guardreasoner-vl no-such-command
guardreasoner-vl check-config sft data.train_files=x
torchrun --nproc_per_node=8 -m no_such_package.main_sft
bash examples/does_not_exist.sh
make test
make no-such-target
```

```yaml
guardreasoner-vl: not a command here
```

```console
$ guardreasoner-vl clip-schedule --steps 4
step 1 ...
```
"""


def test_checker_finds_each_kind_of_broken_reference(tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text(SAMPLE)
    commands = collect([doc])
    assert [c.words[0] for c in commands] == [
        "bash", "guardreasoner-vl", "guardreasoner-vl", "guardreasoner-vl", "torchrun", "bash", "make", "make", "guardreasoner-vl"
    ]
    assert commands[0].line == 6 and commands[0].words[-1] == "data.max_length=2048"
    reported = {str(c.words): problems(c, targets={"demo", "test", "venv"}) for c in commands}
    flat = [p for ps in reported.values() for p in ps]
    assert flat == [
        "'guardreasoner-vl no-such-command' is not a subcommand (" + ", ".join(sorted(cli.COMMANDS)) + ")",
        "python module no_such_package.main_sft is not importable",
        "examples/does_not_exist.sh does not exist",
        "make target 'no-such-target' is not in the Makefile",
    ]


def test_make_targets_are_read_from_the_makefile():
    assert {"demo", "test", "venv"} <= make_targets(REPO_ROOT / "Makefile")
