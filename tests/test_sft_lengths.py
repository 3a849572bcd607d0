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
    kept = pq.read_table(out).column("id").to_pylist()
    original = pq.read_table(sft_parquet).column("id").to_pylist()
    assert summary["overlong"] == 2 and len(kept) == len(original) - 2
    assert set(original) - set(kept) == set(summary["dropped_ids"])
    assert measure(out, tiny_model_dir, max_length=limit).overlong == []
    assert "longer than" in capsys.readouterr().out
