"""The records JSONL hand-over format: in-memory images are never overwritten by another record's."""

from __future__ import annotations

from PIL import Image

from data_prep.record import GuardRecord
from data_prep.records_io import record_from_json, record_to_json


def _record(colour: tuple[int, int, int]) -> GuardRecord:
    return GuardRecord(
        id="concat-000000", source="s", request="q", request_label="harmful", images=(Image.new("RGB", (8, 8), colour),)
    )


def test_same_id_different_images_do_not_overwrite_each_other(tmp_path):
    red, blue = record_to_json(_record((255, 0, 0)), folder=tmp_path), record_to_json(_record((0, 0, 255)), folder=tmp_path)
    assert red["images"] != blue["images"]
    for row, colour in ((red, (255, 0, 0)), (blue, (0, 0, 255))):
        back = record_from_json(row, folder=tmp_path)
        assert Image.open(back.images[0]).getpixel((0, 0)) == colour


def test_same_image_written_twice_is_one_file(tmp_path):
    first = record_to_json(_record((1, 2, 3)), folder=tmp_path)
    again = record_to_json(_record((1, 2, 3)), folder=tmp_path)
    assert first["images"] == again["images"]
    assert len(list((tmp_path / "images").iterdir())) == 1


def test_response_without_label_is_refused():
    import pytest

    with pytest.raises(ValueError, match="'response_label' is missing"):
        GuardRecord(id="r", source="s", request="q", request_label="harmful", response="sure, here is how")
    # a benchmark that labels only the request may leave the response slot unlabelled, explicitly
    record = GuardRecord(
        id="r", source="s", request="q", request_label="harmful", response="ok", meta={"unlabelled": ["response"]}
    )
    assert record.response_label == "none"
