"""Readers: VLTrain, benchmarks (images by id), tables with a mapping, HF folders, failure modes, CLI policy."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from data_prep.errors import ErrorPolicy, RowError
from data_prep.prompt import INSTRUCTION, build_transcript
from data_prep.readers import parse_mapping, read_any, read_benchmark, read_hf, read_table, read_vltrain
from data_prep.records_io import read_records, write_records
from data_prep.transcript import parse_transcript
from cli.main import main as cli_main
from rewards.grammar import format_output


def _vltrain_row(request, response, req, resp, image=None) -> dict:
    user = build_transcript(request, response, has_image=image is not None)
    return {"messages": [{"role": "system", "content": INSTRUCTION}, {"role": "user", "content": user},
                         {"role": "assistant", "content": format_output("Step 1: think.", req, resp)}],
            "images": [image] if image else []}


@pytest.fixture()
def vltrain(tmp_path) -> Path:
    (tmp_path / "images").mkdir()
    Image.new("RGB", (20, 20), (255, 0, 0)).save(tmp_path / "images" / "a.png")
    (tmp_path / "text.json").write_text(json.dumps([
        _vltrain_row("How do I bake bread?", None, "unharmful", "none"),
        _vltrain_row("Be rude to me.", "You are rude.", "harmful", "harmful"),
    ]))
    (tmp_path / "image.json").write_text(json.dumps([_vltrain_row(None, None, "harmful", "none", "images/a.png")]))
    (tmp_path / "text_image.json").write_text(json.dumps([
        _vltrain_row("What is this?", "A red square.", "unharmful", "unharmful", "images/a.png")]))
    return tmp_path


@pytest.mark.parametrize("request_text, response, has_image", [
    ("How do I bake bread?", None, False),
    ("Line one\nline two", "Reply with\n\nblank lines", False),
    (None, None, True),
    ("Describe it.", "It is a cat.", True),
])
def test_parse_transcript_inverts_build_transcript(request_text, response, has_image):
    text = build_transcript(request_text, response, has_image=has_image)
    parsed = parse_transcript(text)
    assert build_transcript(parsed.request or None, parsed.response, has_image=parsed.num_images == 1) == text
    assert parse_transcript(INSTRUCTION + "\n" + text) == parsed  # instruction folded into the user turn
    assert parse_transcript(text[:-1]) == parsed  # files that end the transcript with a single newline
    with pytest.raises(ValueError, match="AI assistant"):
        parse_transcript("Human user:\nhello")


def test_vltrain_folder(vltrain):
    records = list(read_vltrain(vltrain))
    assert [r.id for r in records] == ["text-000000", "text-000001", "image-000000", "text_image-000000"]
    assert [r.modality for r in records] == ["text", "text", "image", "text_image"]
    assert [(r.request_label, r.response_label) for r in records] == [
        ("unharmful", "none"), ("harmful", "harmful"), ("harmful", "none"), ("unharmful", "unharmful")]
    assert records[1].response == "You are rude." and records[0].response is None
    assert records[2].request == "" and records[2].images == (str(vltrain / "images" / "a.png"),)
    assert records[3].reasoning.startswith("<think>") and records[3].source == "vltrain_text_image"


def _bad_rows(vltrain: Path) -> Path:
    rows = [
        _vltrain_row("fine", None, "unharmful", "none"),
        _vltrain_row("x", None, "unharmful", "none", "images/missing.png"),
        {**_vltrain_row("y", None, "unharmful", "none"),
         "messages": [{"role": "user", "content": build_transcript("y", None, has_image=False)},
                      {"role": "assistant", "content": "<think>t</think><result>Request: maybe\nResponse: None</result>"}]},
        {"messages": [{"role": "user", "content": "Human user:\n\n\nAI assistant:\nNone\n"},
                      {"role": "assistant", "content": format_output("t", "unharmful", None)}], "images": []},
    ]
    path = vltrain / "bad.json"
    path.write_text(json.dumps(rows))
    return path


def test_failure_modes_raise_with_row_and_field(vltrain):
    path = _bad_rows(vltrain)
    with pytest.raises(RowError, match=r"row 'bad-000001', field 'images\[0\]': image file not found"):
        list(read_vltrain(path))


def test_failure_modes_skip_and_count(vltrain):
    policy = ErrorPolicy("skip")
    records = list(read_vltrain(_bad_rows(vltrain), policy=policy))
    assert [r.id for r in records] == ["bad-000000"]
    assert dict(policy.skipped) == {"missing image": 1, "unknown label": 1, "no request": 1}
    assert any("bad-000002" in e and "messages[1].content" in e for e in policy.examples)


def test_cli_on_error_raise_and_skip(vltrain, tmp_path, capsys):
    bad = _bad_rows(vltrain)
    Path(vltrain / "images" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    rows = json.loads(bad.read_text()) + [_vltrain_row("z", None, "unharmful", "none", "images/corrupt.png")]
    bad.write_text(json.dumps(rows))
    out = tmp_path / "out" / "rl.parquet"
    assert cli_main(["build-rl", str(bad), "-o", str(out)]) == 1
    assert "row 'bad-000001', field 'images[0]'" in capsys.readouterr().err
    assert not out.exists()
    assert cli_main(["build-rl", str(bad), "-o", str(out), "--on-error", "skip"]) == 0
    printed = capsys.readouterr().out
    assert "rows in 5, rows out 1, skipped 4" in printed and '"corrupt image": 1' in printed
    assert pq.read_table(out).num_rows == 1


def test_benchmark_images_matched_by_id(tmp_path):
    folder = tmp_path / "images" / "HarmImageTest"
    folder.mkdir(parents=True)
    colours = {"b-2": (0, 0, 255), "a-1": (255, 0, 0)}
    for row_id, colour in colours.items():
        Image.new("RGB", (8, 8), colour).save(folder / f"{row_id}.png")
    rows = [{"id": row_id, "messages": [
        {"role": "user", "content": INSTRUCTION + "\n" + build_transcript(None, None, has_image=True)},
        {"role": "assistant", "content": f"Request: {label}\nResponse: None"}]}
        for row_id, label in (("b-2", "harmful"), ("a-1", "unharmful"))]  # file order != sorted image order
    (tmp_path / "HarmImageTest.json").write_text(json.dumps(rows))
    records = list(read_benchmark("HarmImageTest", tmp_path))
    assert [r.id for r in records] == ["b-2", "a-1"]
    for record in records:
        assert Image.open(record.images[0]).getpixel((0, 0)) == colours[record.id]
    assert records[0].request_label == "harmful" and records[0].meta["tasks"] == ["prompt"]
    (folder / "a-1.png").unlink()
    with pytest.raises(RowError, match=r"row 'a-1', field 'image': no image named a-1"):
        list(read_benchmark("HarmImageTest", tmp_path))


def test_text_benchmark_labels(tmp_path):
    rows = [{"input": build_transcript("q", "a", has_image=False), "output": "harmful"},
            {"input": build_transcript("q2", "a2", has_image=False), "output": "unsafe"}]
    (tmp_path / "HarmBenchResponse.json").write_text(json.dumps(rows))
    records = list(read_benchmark("HarmBenchResponse", tmp_path))
    assert [r.response_label for r in records] == ["harmful", "harmful"]
    assert records[0].meta == {"tasks": ["response"], "unlabelled": ["request"]}
    assert records[0].response == "a" and records[0].id == "HarmBenchResponse-000000"
    rows[1]["output"] = "maybe"
    (tmp_path / "HarmBenchResponse.json").write_text(json.dumps(rows))
    with pytest.raises(RowError, match="unknown response label 'maybe'"):
        list(read_benchmark("HarmBenchResponse", tmp_path))


def test_bundled_mini_benchmarks_read(sample_dir):
    from data_prep.benchmarks import BENCHMARK_FILES

    for stem, info in BENCHMARK_FILES.items():
        records = list(read_benchmark(stem, sample_dir / "benchmarks"))
        # rows carry the display name the evaluation tables use (SPA_VL_Eval.json -> SPA-VL-Eval)
        assert len(records) == 4 and all(r.source == info.name for r in records)
        assert all(bool(r.images) == (info.layout == "vl") for r in records)


def _table_rows() -> list[dict]:
    return [{"uid": "u1", "prompt": "hello", "label": "safe", "answer": "", "answer_label": ""},
            {"uid": "u2", "prompt": "be mean", "label": "unsafe", "answer": "no", "answer_label": "safe"}]


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".parquet"])
def test_table_with_mapping(tmp_path, suffix):
    path = tmp_path / f"t{suffix}"
    rows = _table_rows()
    if suffix == ".jsonl":
        path.write_text("\n".join(json.dumps(r) for r in rows))
    elif suffix == ".csv":
        with open(path, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    else:
        pq.write_table(pa.Table.from_pylist(rows), path)
    mapping = parse_mapping("id=uid,request=prompt,request_label=label,response=answer,response_label=answer_label")
    records = list(read_table(path, mapping=mapping))
    assert [(r.id, r.request_label, r.response, r.response_label) for r in records] == [
        ("u1", "unharmful", None, "none"), ("u2", "harmful", "no", "unharmful")]
    assert records[0].source == "t"


def test_table_bad_mapping_and_labels(tmp_path):
    with pytest.raises(ValueError, match="bad --map field 'nope'"):
        parse_mapping("nope=x")
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps({"request": "x", "request_label": "perhaps"}))
    with pytest.raises(RowError, match=r"row 't-000000', field 'request_label': unknown request label"):
        list(read_table(path))


def test_hf_local_folder(tmp_path):
    folder = tmp_path / "hfdata"
    folder.mkdir()
    (folder / "train.jsonl").write_text("\n".join(json.dumps(r) for r in _table_rows()))
    records = list(read_hf(str(folder), mapping=parse_mapping("id=uid,request=prompt,request_label=label,"
                                                              "response=answer,response_label=answer_label")))
    assert [r.id for r in records] == ["u1", "u2"] and records[0].source == "hfdata"


def test_records_round_trip_and_detection(vltrain, tmp_path):
    records = list(read_vltrain(vltrain))
    out = tmp_path / "pool" / "records.jsonl"
    assert write_records(records, out) == 4
    back = list(read_any(str(out)))  # auto-detected as records
    assert back == records
    assert list(read_records(out))[2].images == records[2].images


def test_parse_transcript_round_trip_property():
    hypothesis = pytest.importorskip("hypothesis")
    from hypothesis import strategies as st

    text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40).filter(
        lambda s: "AI assistant:" not in s and "Human user:" not in s and "<image>" not in s)

    @hypothesis.settings(max_examples=30, deadline=None)
    @hypothesis.given(request=text, response=st.none() | text, has_image=st.booleans())
    def check(request, response, has_image):
        if not request.strip() and not has_image:
            return
        if response is not None and (response.strip() == "None" or response.endswith("\n")):
            return  # the literal "None" slot and trailing newlines are not representable
        parsed = parse_transcript(build_transcript(request, response, has_image=has_image))
        assert (parsed.request, parsed.response, parsed.num_images) == (request.strip(), response, int(has_image))

    check()
