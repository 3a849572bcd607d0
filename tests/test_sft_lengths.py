"""check-sft-lengths: rows flagged overlong are exactly the rows verl's SFT dataset refuses."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

pytest.importorskip("verl")


@pytest.fixture(scope="module")
def sft_parquet(tmp_path_factory, sample_dir):
    from data_prep.readers import read_vltrain
    from data_prep.writers import ImageOptions, write_sft

    path = tmp_path_factory.mktemp("sft") / "train.parquet"
    records = list(read_vltrain(sample_dir / "vltrain"))[::6]  # 12 rows of every modality
    write_sft(records, path, options=ImageOptions(max_pixels=16 * 28 * 28, min_pixels=4 * 28 * 28))
    return path


def test_flags_exactly_the_rows_verl_refuses(sft_parquet, tiny_model_dir):
    from omegaconf import OmegaConf
    from verl.utils import hf_processor

    from recipe.guardreasoner_vl.sft_dataset import GuardSFTDataset
    from recipe.guardreasoner_vl.sft_lengths import measure

    full = measure(sft_parquet, tiny_model_dir, max_length=10**6)
    assert full.overlong == [] and full.errors == {}
    lengths = sorted(full.lengths)
    limit = lengths[len(lengths) // 2]  # about half the rows are longer
    report = measure(sft_parquet, tiny_model_dir, max_length=limit)
    assert report.lengths == full.lengths and 0 < len(report.overlong) < len(lengths)

    processor = hf_processor(str(tiny_model_dir))
    config = OmegaConf.create({"pad_mode": "no_padding", "max_length": limit, "truncation": "error"})
    verl_dataset = GuardSFTDataset(
        parquet_files=str(sft_parquet), tokenizer=processor.tokenizer, config=config, processor=processor
    )
    refused = []
    for index in range(len(verl_dataset)):
        try:
            verl_dataset[index]
        except ValueError as err:
            assert "max_length" in str(err)
            refused.append(index)
    assert refused == report.overlong


def test_cli_reports_and_writes_a_fitting_copy(sft_parquet, tiny_model_dir, tmp_path, capsys):
    from cli import main as cli
    from recipe.guardreasoner_vl.sft_lengths import measure

    limit = sorted(measure(sft_parquet, tiny_model_dir).lengths)[-3]  # the 2 longest rows do not fit
    base = ["check-sft-lengths", str(sft_parquet), "--model", str(tiny_model_dir), "--max-length", str(limit)]
    assert cli.main(base) == 1  # overlong rows and no -o: a launch script can stop here
    out, report = tmp_path / "fit.parquet", tmp_path / "report.json"
    assert cli.main([*base, "-o", str(out), "--report", str(report)]) == 0
    summary = json.loads(report.read_text())
    assert summary["by_modality"] and summary["truncated"] == 0
    kept = pq.read_table(out).column("id").to_pylist()
    original = pq.read_table(sft_parquet).column("id").to_pylist()
    assert summary["overlong"] == 2 and len(kept) == len(original) - 2
    assert set(original) - set(kept) == set(summary["dropped_ids"])
    assert measure(out, tiny_model_dir, max_length=limit).overlong == []
    printed = capsys.readouterr().out
    assert "longer than" in printed and "rows over (" in printed  # per-modality lines

    fitted = tmp_path / "truncated.parquet"
    assert cli.main([*base, "-o", str(fitted), "--truncate-prompt"]) == 0
    assert "prompt-truncated to fit: 2 rows" in capsys.readouterr().out
    assert pq.read_table(fitted).column("id").to_pylist() == original  # nothing dropped: both rows fitted
    assert measure(fitted, tiny_model_dir, max_length=limit).overlong == []


def test_report_counts_overlong_rows_per_modality(sft_parquet, tiny_model_dir):
    from recipe.guardreasoner_vl.sft_lengths import measure

    lengths = sorted(measure(sft_parquet, tiny_model_dir).lengths)
    report = measure(sft_parquet, tiny_model_dir, max_length=lengths[len(lengths) // 2])
    modalities = pq.read_table(sft_parquet).column("modality").to_pylist()
    summary = report.summary()
    assert set(summary["by_modality"]) == set(modalities) == {"text", "image", "text_image"}
    for modality, counts in summary["by_modality"].items():
        rows = [i for i, m in enumerate(modalities) if m == modality]
        over = [i for i in rows if i in report.overlong]
        assert (counts["rows"], counts["overlong"]) == (len(rows), len(over))
        assert counts["share"] == pytest.approx(len(over) / len(rows))
    assert summary["overlong"] == len(report.overlong) and summary["overlong_share"] == len(report.overlong) / 12


def test_truncate_prompt_fits_rows_without_touching_the_target(sft_parquet, tiny_model_dir, tmp_path):
    """Overlong rows get a shorter request/response text; verl then builds every row within the limit."""
    from omegaconf import OmegaConf
    from verl.utils import hf_processor

    from data_prep.transcript import parse_transcript
    from recipe.guardreasoner_vl.sft_dataset import GuardSFTDataset
    from recipe.guardreasoner_vl.sft_lengths import measure, write_fitted

    lengths = measure(sft_parquet, tiny_model_dir).lengths
    limit = sorted(lengths)[len(lengths) // 3]  # two thirds of the rows are over
    report = measure(sft_parquet, tiny_model_dir, max_length=limit, truncate_prompt=True)
    assert report.truncated, "some rows must be fitted by truncation"
    assert set(report.truncated) | set(report.untruncatable) == set(report.overlong)
    assert set(report.dropped) == set(report.untruncatable)

    out = tmp_path / "fit.parquet"
    kept = write_fitted(sft_parquet, out, report)
    before = {r["id"]: r for r in pq.read_table(sft_parquet).to_pylist()}
    after = {r["id"]: r for r in pq.read_table(out).to_pylist()}
    assert kept == len(after) == len(before) - len(report.dropped)
    truncated_ids = {report.ids[i] for i in report.truncated}
    for row_id, row in after.items():
        old = before[row_id]
        assert row["messages"][2] == old["messages"][2]  # the target: reasoning and verdict, never cut
        assert row["messages"][0] == old["messages"][0] and row["images"] == old["images"]
        if row_id in truncated_ids:
            new_t, old_t = parse_transcript(row["messages"][1]["content"]), parse_transcript(old["messages"][1]["content"])
            assert len(new_t.request) + len(new_t.response or "") < len(old_t.request) + len(old_t.response or "")
            assert new_t.num_images == old_t.num_images and (new_t.response is None) == (old_t.response is None)
        else:
            assert row["messages"] == old["messages"]

    processor = hf_processor(str(tiny_model_dir))
    config = OmegaConf.create({"pad_mode": "no_padding", "max_length": limit, "truncation": "error"})
    dataset = GuardSFTDataset(parquet_files=str(out), tokenizer=processor.tokenizer, config=config, processor=processor)
    assert all(len(dataset[i]["input_ids"]) <= limit for i in range(len(dataset)))  # verl refuses none


def test_a_row_whose_target_alone_is_too_long_is_dropped_not_cut(sft_parquet, tiny_model_dir):
    from recipe.guardreasoner_vl.sft_lengths import measure

    report = measure(sft_parquet, tiny_model_dir, max_length=8, truncate_prompt=True)
    assert not report.truncated and set(report.dropped) == set(range(12))
    assert all("hold only" in reason for reason in report.untruncatable.values())
