"""The bundled sample corpus: layout, labels, images, coverage, reproducibility, packaging."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from data_prep.prompt import IMAGE_PLACEHOLDER, INSTRUCTION, build_transcript
from data_prep.record import IMAGE, MODALITIES, TEXT, TEXT_IMAGE
from demo import sample as sample_mod
from rewards.grammar import HARMFUL, NO_RESPONSE, UNHARMFUL, parse_verdict

# "Human user:\n[<image>\n][request]\n\nAI assistant:\n{response}\n\n" (build_transcript's layout)
_TRANSCRIPT = re.compile(r"\AHuman user:\n(?P<request>.*?)\n\nAI assistant:\n(?P<response>.*)\n\n\Z", re.DOTALL)
REPO_ROOT = Path(__file__).resolve().parents[1]


def _rows(sample_dir: Path, modality: str) -> list[dict]:
    return json.loads((sample_dir / "vltrain" / f"{modality}.json").read_text(encoding="utf-8"))


def _split_transcript(transcript: str, has_image: bool) -> tuple[str, str | None]:
    """(request, response) read back from a transcript; response None for the literal ``None``."""
    match = _TRANSCRIPT.match(transcript)
    assert match, f"not a transcript: {transcript!r}"
    request = match["request"]
    if has_image:
        assert request.startswith(IMAGE_PLACEHOLDER)
        request = request[len(IMAGE_PLACEHOLDER) :].lstrip("\n")
    response = None if match["response"] == "None" else match["response"]
    return request, response


@pytest.mark.parametrize("modality", MODALITIES)
def test_every_row_has_the_vltrain_layout(sample_dir, modality):
    rows = _rows(sample_dir, modality)
    assert rows, modality
    for i, row in enumerate(rows):
        where = f"{modality}[{i}]"
        assert set(row) == {"messages", "images"}, where
        system, user, assistant = row["messages"]
        assert [m["role"] for m in row["messages"]] == ["system", "user", "assistant"], where
        assert system["content"] == INSTRUCTION, where  # byte for byte
        images = row["images"]
        assert user["content"].count(IMAGE_PLACEHOLDER) == len(images), where
        assert (modality == TEXT) == (not images), where
        request, response = _split_transcript(user["content"], bool(images))
        assert (modality == IMAGE) == (request == ""), where
        assert user["content"] == build_transcript(request, response, has_image=bool(images)), where
        verdict = parse_verdict(assistant["content"])
        assert verdict.format_ok and verdict.parsed, where
        assert (verdict.response == NO_RESPONSE) == (response is None), where
        for rel in images:
            path = sample_dir / "vltrain" / rel
            assert path.is_file(), f"{where}: {rel}"
            with Image.open(path) as image:
                image.load()
                assert 64 <= min(image.size) and max(image.size) <= 256, f"{where}: {rel} is {image.size}"


def test_rows_match_the_records_they_were_built_from(sample_dir):
    records = sample_mod.sample_records(seed=0)
    for modality in MODALITIES:
        rows = _rows(sample_dir, modality)
        assert [sample_mod.to_vltrain_row(r) for r in records[modality]] == rows
        assert [r.id for r in records[modality]] == [f"{modality}-{i:06d}" for i in range(len(rows))]
        assert all(r.modality == modality for r in records[modality])


def test_project_reader_reads_back_the_same_records(sample_dir):
    """``data_prep.readers.read_vltrain`` (the inverse of the layout) recovers every record."""
    from data_prep.readers import read_vltrain

    expected = {r.id: r for rows in sample_mod.sample_records(seed=0).values() for r in rows}
    got = {r.id: r for r in read_vltrain(sample_dir / "vltrain")}
    assert got.keys() == expected.keys()
    for rid, record in got.items():
        want = expected[rid]
        fields = ("source", "request", "response", "request_label", "response_label", "reasoning")
        assert [getattr(record, f) for f in fields] == [getattr(want, f) for f in fields], rid
        assert [Path(p).resolve() for p in record.images] == [
            (sample_dir / "vltrain" / p).resolve() for p in want.images
        ], rid


def test_mix_covers_every_modality_label_and_response_case(sample_dir):
    seen = set()
    lengths = []
    for modality in MODALITIES:
        for row in _rows(sample_dir, modality):
            verdict = parse_verdict(row["messages"][2]["content"])
            seen.add((modality, verdict.request, verdict.response))
            lengths.append(len(row["messages"][1]["content"]) + len(row["messages"][2]["content"]))
    for modality in MODALITIES:
        for request in (HARMFUL, UNHARMFUL):
            assert (modality, request, NO_RESPONSE) in seen, (modality, request, "no response")
            assert any((modality, request, r) in seen for r in (HARMFUL, UNHARMFUL)), (modality, request)
    assert {resp for _, _, resp in seen} == {HARMFUL, UNHARMFUL, NO_RESPONSE}
    assert len(lengths) >= 64
    assert max(lengths) >= 1.8 * min(lengths)  # clearly varying lengths


def test_images_cover_palette_and_alpha_and_stay_small(sample_dir):
    images = sorted((sample_dir / "vltrain" / "images").glob("*.png"))
    modes, sizes = set(), set()
    for path in images:
        with Image.open(path) as image:
            modes.add(image.mode)
            sizes.add(image.size)
            image.convert("RGB")  # what the converters do
    assert {"P", "RGBA", "RGB"} <= modes
    assert len({w / h for w, h in sizes}) >= 5  # varied aspect ratios
    referenced = {rel for m in (IMAGE, TEXT_IMAGE) for row in _rows(sample_dir, m) for rel in row["images"]}
    assert referenced == {f"images/{p.name}" for p in images}  # no orphan, no missing file
    total = sum(p.stat().st_size for p in (sample_dir / "vltrain").rglob("*") if p.is_file())
    assert total < 1_000_000


def test_regenerating_reproduces_the_committed_files_byte_for_byte(sample_dir, tmp_path):
    out = sample_mod.build_sample(tmp_path / "vltrain", seed=0)
    committed = sample_dir / "vltrain"
    names = sorted(p.relative_to(committed).as_posix() for p in committed.rglob("*") if p.is_file())
    assert names == sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    for name in names:
        assert (out / name).read_bytes() == (committed / name).read_bytes(), name
    assert not (tmp_path / "vltrain.incomplete").exists()
    other = sample_mod.build_sample(tmp_path / "seed1", seed=1)
    assert (other / "text.json").read_bytes() != (committed / "text.json").read_bytes()


def test_module_entry_point_writes_a_sample(tmp_path):
    out = tmp_path / "fresh"
    done = subprocess.run(
        [sys.executable, "-m", "demo.sample", str(out)],
        cwd=REPO_ROOT, capture_output=True, text=True, check=True,
    )
    assert "wrote" in done.stdout
    assert {p.name for p in out.iterdir()} == {"text.json", "image.json", "text_image.json", "images"}


@pytest.mark.e2e
def test_sample_ships_as_package_data(tmp_path):
    """``pip install --no-deps --target`` of the project carries sample_data, found via SAMPLE_DIR."""
    # Build from a copy: pip builds in-tree and would leave build/ in the checkout.
    source = tmp_path / "src"
    source.mkdir()
    for name in ("setup.py", "README.md"):
        shutil.copy2(REPO_ROOT / name, source / name)
    for name in ("recipe", "rewards", "data_prep", "inference", "evaluation", "demo", "cli"):
        shutil.copytree(REPO_ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--quiet",
         "--target", str(target), str(source)],
        check=True, capture_output=True, text=True,
    )
    code = (
        "import json, sys; from demo.sample import SAMPLE_DIR; "
        "print(json.dumps([str(SAMPLE_DIR)] + sorted(p.relative_to(SAMPLE_DIR).as_posix() "
        "for p in SAMPLE_DIR.rglob('*') if p.is_file())))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env={"PYTHONPATH": str(target)},
        capture_output=True, text=True, check=True,
    )
    where, *files = json.loads(done.stdout)
    assert Path(where).is_relative_to(target)
    expected = sorted(
        p.relative_to(sample_mod.SAMPLE_DIR).as_posix() for p in sample_mod.SAMPLE_DIR.rglob("*") if p.is_file()
    )
    assert files == expected
