"""The data subcommands end to end on the bundled sample, through the real console-script entry."""

from __future__ import annotations

import json

import pyarrow.parquet as pq

from data_prep.records_io import read_records
from cli.main import main


def test_sample_pipeline(sample_dir, tmp_path, capsys):
    vltrain, out = sample_dir / "vltrain", tmp_path
    assert main(["build-sft", str(vltrain), "-o", str(out / "sft.parquet")]) == 0
    n_sample = pq.read_table(out / "sft.parquet").num_rows
    assert f"rows in {n_sample}, rows out {n_sample}, skipped 0" in capsys.readouterr().out

    assert main(["split", str(vltrain), "-o", str(out / "split"), "--size", "20", "--seed", "1"]) == 0
    train = list(read_records(out / "split" / "train.jsonl"))
    assert (len(train), len(list(read_records(out / "split" / "val.jsonl")))) == (16, 4)

    assert main(["concat", str(out / "split" / "train.jsonl"), "-o", str(out / "concat.jsonl"), "--fraction", "0.2"]) == 0
    concatenated = [r for r in read_records(out / "concat.jsonl") if r.concat_of]
    assert len(concatenated) == 4 and all(len(r.images) <= 1 for r in concatenated)

    assert main(["build-rl", str(out / "concat.jsonl"), "-o", str(out / "rl.parquet"), "--split-name", "train"]) == 0
    infos = pq.read_table(out / "rl.parquet").column("extra_info").to_pylist()
    assert len(infos) == 20 and sum(bool(i["concat_of"]) for i in infos) == 4
    capsys.readouterr()

    assert main(["build-eval", str(sample_dir / "benchmarks"), "-o", str(out / "eval"),
                 "--benchmarks", "HarmImageTest", "ToxicChat"]) == 0
    rows = [json.loads(line) for line in (out / "eval" / "HarmImageTest.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and all(len(r["images"]) == 1 and (out / "eval" / r["images"][0]).is_file() for r in rows)
    assert all(r["meta"]["tasks"] == ["prompt"] for r in rows)

    assert main(["export-llamafactory", str(vltrain), "-o", str(out / "lf"), "--name", "sample"]) == 0
    assert "sample" in json.loads((out / "lf" / "dataset_info.json").read_text())
    # LLaMA-Factory reads the image budget from its training arguments: the export writes them there.
    import yaml

    train_args = yaml.safe_load((out / "lf" / "sample_sft.yaml").read_text())
    assert (train_args["image_max_pixels"], train_args["image_min_pixels"]) == (589_824, 1_024)
    assert train_args["dataset"] == "sample" and train_args["dataset_dir"] == str((out / "lf").resolve())
    assert train_args["freeze_vision_tower"] and train_args["freeze_multi_modal_projector"]
    assert train_args["weight_decay"] == 0.0 and train_args["cutoff_len"] == 2048
    # build-sft stores the same budget per image (the released R-SFT's)
    images = [im for row in pq.read_table(out / "sft.parquet").column("images").to_pylist() for im in row]
    assert images and {(im["max_pixels"], im["min_pixels"]) for im in images} == {(589_824, 1_024)}


def test_mine_command_resumes(sample_dir, tiny_model_dir, tmp_path, capsys):
    assert main(["split", str(sample_dir / "vltrain"), "-o", str(tmp_path / "s"), "--size", "3", "--val-fraction", "0"]) == 0
    args = ["mine", str(tmp_path / "s" / "train.jsonl"), "--backend", "hf", "--model", str(tiny_model_dir),
            "-k", "1", "--max-new-tokens", "2", "-o", str(tmp_path / "mine")]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert "rows 3 (generated now 3, resumed 0)" in first
    assert main(args) == 0
    assert "rows 3 (generated now 0, resumed 3)" in capsys.readouterr().out
    report = json.loads((tmp_path / "mine" / "report.json").read_text())
    assert sum(v["rows"] for v in report["by_modality"].values()) == 3
