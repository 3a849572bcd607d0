"""Safety-aware concatenation: label truth table, image placement, placeholders, determinism, fraction."""

from __future__ import annotations

import io
import itertools

import pytest
from PIL import Image

from data_prep.concat import concat_images, concat_pair, concatenate, join_transcripts, merge_labels, num_concatenations
from data_prep.prompt import build_transcript
from data_prep.record import GuardRecord
from data_prep.transcript import record_messages

H, U, N = "harmful", "unharmful", "none"


@pytest.mark.parametrize("a, b, expected", [
    (U, U, U), (U, H, H), (H, U, H), (H, H, H),
])
def test_request_label_is_harmful_if_either_is(a, b, expected):
    assert merge_labels((a, N), (b, N))[0] == expected


@pytest.mark.parametrize("a, b, expected", [
    (N, N, N), (N, U, U), (U, N, U), (U, U, U),
    (N, H, H), (H, N, H), (U, H, H), (H, U, H), (H, H, H),
])
def test_response_label_truth_table(a, b, expected):
    assert merge_labels((U, a), (U, b))[1] == expected


def test_join_keeps_both_blocks_and_one_placeholder():
    a = build_transcript("first", None, has_image=True)
    b = build_transcript("second", "reply", has_image=True)
    joined = join_transcripts(a, b)
    assert joined == a + " " + b.replace("<image>\n", "")
    assert joined.count("<image>") == 1 and joined.count("Human user:") == 2 and joined.count("AI assistant:") == 2
    text_then_image = join_transcripts(build_transcript("t", None, has_image=False), b)
    assert text_then_image.count("<image>") == 1  # the only image's placeholder survives


def _solid(size, colour):
    return Image.new("RGB", size, colour)


def test_concat_images_horizontal_and_vertical_placement():
    a, b = _solid((40, 30), (255, 0, 0)), _solid((20, 50), (0, 0, 255))
    h = concat_images(a, b, "horizontal")
    assert h.size == (60, 50)
    assert h.getpixel((0, 0)) == (255, 0, 0) and h.getpixel((39, 29)) == (255, 0, 0)
    assert h.getpixel((40, 0)) == (0, 0, 255) and h.getpixel((59, 49)) == (0, 0, 255)
    assert h.getpixel((10, 40)) == (255, 255, 255)  # padding under the shorter image is white
    v = concat_images(a, b, "vertical")
    assert v.size == (40, 80)
    assert v.getpixel((0, 30)) == (0, 0, 255) and v.getpixel((30, 60)) == (255, 255, 255)
    with pytest.raises(ValueError, match="layout"):
        concat_images(a, b, "diagonal")


def test_concat_images_shrinks_to_fit_1024_box():
    big = concat_images(_solid((900, 600), (1, 2, 3)), _solid((900, 400), (4, 5, 6)), "horizontal")
    assert big.size == (1024, 341)  # 1800x600 scaled by 1024/1800
    small = concat_images(_solid((10, 10), (0, 0, 0)), _solid((10, 10), (0, 0, 0)))
    assert small.size == (20, 10)  # never enlarged


def _record(i: int, *, image=None, req=U, resp=N, response=None) -> GuardRecord:
    return GuardRecord(id=f"r{i}", source="s", request=f"request {i}", request_label=req,
                       response=response, response_label=resp, images=(image,) if image is not None else ())


def test_concat_pair_record(tmp_path):
    red, blue = tmp_path / "red.png", tmp_path / "blue.png"
    _solid((30, 20), (255, 0, 0)).save(red)
    _solid((10, 40), (0, 0, 255)).save(blue)
    a = _record(1, image=str(red), req=H)
    b = _record(2, image=str(blue), resp=U, response="ok")
    pair = concat_pair(a, b, new_id="c0")
    assert pair.concat_of == ("r1", "r2")
    assert (pair.request_label, pair.response_label) == (H, U)
    image = Image.open(io.BytesIO(pair.images[0]))
    assert image.size == (40, 40) and image.getpixel((35, 5)) == (0, 0, 255)
    user = record_messages(pair)[1]["content"]
    assert user.count("<image>") == 1 and "request 1" in user and "request 2" in user
    only_b = concat_pair(_record(3), b, new_id="c1")
    assert only_b.images == b.images  # one image: used as it is
    neither = concat_pair(_record(3), _record(4), new_id="c2")
    assert neither.images == () and "<image>" not in record_messages(neither)[1]["content"]
    # Mining, evaluation and moderation prompt a concatenation exactly as the RL parquet does.
    from inference.base import request_from_record

    assert request_from_record(pair).messages == record_messages(pair)
    assert request_from_record(pair).messages[1]["content"].count("Human user:") == 2


def test_concatenate_is_seeded_and_hits_the_fraction():
    records = [_record(i, req=H if i % 3 == 0 else U) for i in range(40)]
    first = list(concatenate(records, fraction=0.2, seed=7))
    again = list(concatenate(records, fraction=0.2, seed=7))
    other = list(concatenate(records, fraction=0.2, seed=8))
    assert [r.concat_of for r in first] == [r.concat_of for r in again]
    assert [r.concat_of for r in first] != [r.concat_of for r in other]
    assert len(first) == 10 and len(first) / (len(records) + len(first)) == pytest.approx(0.2)
    assert all(a != b for a, b in (r.concat_of for r in first))
    assert [r.id for r in first] == [f"concat-{j:06d}" for j in range(10)]
    assert num_concatenations(9600, 0.2) == 2400  # the paper's 2.4K of 12K
    assert len(list(concatenate(records, count=3))) == 3
    with pytest.raises(ValueError, match="fraction"):
        concatenate(records, fraction=1.0)
    with pytest.raises(ValueError, match="at least 2"):
        concatenate(records[:1], count=1)


def test_concatenated_labels_follow_parents():
    records = [_record(i, req=req, resp=resp, response=None if resp == N else "r")
               for i, (req, resp) in enumerate(itertools.product((H, U), (H, U, N)))]
    for pair in concatenate(records, count=30, seed=1):
        a, b = (records[int(x[1:])] for x in pair.concat_of)
        assert (pair.request_label, pair.response_label) == merge_labels(
            (a.request_label, a.response_label), (b.request_label, b.response_label))


# --- concatenation on a corpus with bad rows (the `concat` command, then build-rl) -------------------


def _corpus(tmp_path, n_good: int, n_corrupt: int) -> tuple:
    """A records JSONL: ``n_good`` valid rows (every other one with an image), ``n_corrupt`` rows whose
    image file is garbage or truncated, and one row whose image file is missing."""
    from data_prep.records_io import write_records

    folder = tmp_path / "corpus"
    (folder / "img").mkdir(parents=True)
    records, bad = [], {}
    for i in range(n_good):
        image = None
        if i % 2:
            image = folder / "img" / f"ok{i}.png"
            _solid((16 + i, 12), (10 * i % 255, 0, 0)).save(image)
        records.append(_record(i, image=str(image) if image else None, req=H if i % 3 == 0 else U))
    for j in range(n_corrupt):
        path = folder / "img" / f"bad{j}.png"
        buffer = io.BytesIO()
        _solid((64, 64), (1, 2, 3)).save(buffer, format="PNG")
        path.write_bytes(b"not an image" if j % 2 == 0 else buffer.getvalue()[:120])
        records.append(_record(1000 + j, image=str(path)))
        bad[f"r{1000 + j}"] = path
    missing = folder / "img" / "missing.png"
    missing.write_bytes(b"x")
    records.append(_record(2000, image=str(missing)))
    bad["r2000"] = missing
    write_records(records, folder / "records.jsonl")
    missing.unlink()
    return folder / "records.jsonl", bad


@pytest.mark.parametrize("n_good, n_corrupt, fraction", [(16, 2, 0.2), (23, 3, 0.2), (7, 1, 0.5), (40, 4, 0.1)])
def test_concat_skips_bad_rows_and_draws_an_exact_count_from_the_valid_ones(tmp_path, capsys, n_good, n_corrupt, fraction):
    import pyarrow.parquet as pq

    from cli.main import main
    from data_prep.records_io import read_records

    corpus, bad = _corpus(tmp_path, n_good, n_corrupt)
    out = tmp_path / "concat.jsonl"
    assert main(["concat", str(corpus), "-o", str(out), "--fraction", str(fraction), "--on-error", "skip"]) == 0
    summary = capsys.readouterr().out
    rows = list(read_records(out))
    originals = [r for r in rows if not r.concat_of]
    concatenated = [r for r in rows if r.concat_of]
    assert len(originals) == n_good and not {r.id for r in originals} & set(bad)
    assert len(concatenated) == round(n_good * fraction / (1 - fraction)) == num_concatenations(n_good, fraction)
    assert all(not set(r.concat_of) & set(bad) for r in concatenated)  # parents only from valid rows
    assert f"skipped {n_corrupt + 1}" in summary and "corrupt image" in summary and "missing image" in summary

    # Everything that reached the records builds: build-rl in raise mode writes every row.
    assert main(["build-rl", str(out), "-o", str(tmp_path / "rl.parquet")]) == 0
    infos = pq.read_table(tmp_path / "rl.parquet").column("extra_info").to_pylist()
    assert len(infos) == len(rows) and sum(bool(i["concat_of"]) for i in infos) == len(concatenated)


def test_concat_in_raise_mode_names_the_row_and_the_image_file(tmp_path, capsys):
    from cli.main import main

    corpus, bad = _corpus(tmp_path, 6, 1)
    assert main(["concat", str(corpus), "-o", str(tmp_path / "out.jsonl")]) == 1
    err = capsys.readouterr().err
    assert "row 'r1000', field 'images[0]'" in err and str(bad["r1000"]) in err and "BytesIO" not in err
    assert not (tmp_path / "out.jsonl").exists()


def test_build_rl_has_no_concatenation_options_of_its_own(tmp_path):
    from cli.main import main

    with pytest.raises(SystemExit) as exit_info:
        main(["build-rl", "in.jsonl", "-o", str(tmp_path / "x.parquet"), "--concat-fraction", "0.2"])
    assert exit_info.value.code == 2
