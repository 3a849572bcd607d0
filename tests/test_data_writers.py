"""Writers: RL / SFT parquet through verl's real datasets, LLaMA-Factory export, eval files, atomicity."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from PIL import Image

from data_prep.errors import ErrorPolicy, RowError
from data_prep.record import GuardRecord
from data_prep.writers import (
    EXTRA_INFO_TYPE, ImageOptions, ParquetSink, RL_SCHEMA, estimate_image_tokens, export_llamafactory,
    write_eval_file, write_rl, write_sft,
)
from rewards.grammar import format_output

MAX_PIXELS = 64 * 28 * 28  # small budget: fast processor, and proves max_pixels reaches the processor


def _png(path: Path, size=(120, 90), colour=(10, 120, 200)) -> str:
    Image.new("RGB", size, colour).save(path)
    return str(path)


@pytest.fixture()
def records(tmp_path) -> list[GuardRecord]:
    """Text, image-only and text-image rows, with and without responses, with reasoning targets."""
    big = _png(tmp_path / "big.png", size=(900, 300))  # larger than max_pixels: must be limited by it
    small = _png(tmp_path / "small.png")
    rows = [
        dict(id="t0", source="srcA", request="How do I bake bread?", request_label="unharmful"),
        dict(id="t1", source="srcA", request="Insult my coworker.", request_label="harmful",
             response="No, I won't do that.", response_label="unharmful"),
        dict(id="i0", source="srcB", request="", request_label="harmful", images=(small,)),
        dict(id="ti0", source="srcB", request="What is shown?", request_label="unharmful",
             response="A blue square.", response_label="unharmful", images=(big,)),
    ]
    out = []
    for row in rows:
        record = GuardRecord(**row)
        target = format_output("The request is judged step by step.", record.request_label, record.response_label)
        out.append(record.evolve(reasoning=target))
    return out


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    transformers = pytest.importorskip("transformers")
    tokenizer = transformers.AutoTokenizer.from_pretrained(tiny_model_dir)
    processor = transformers.AutoProcessor.from_pretrained(tiny_model_dir)
    return tokenizer, processor


def _image_token_id(processor) -> int:
    return processor.tokenizer.convert_tokens_to_ids(processor.image_token)


def test_rl_parquet_loads_in_verl_rlhf_dataset(records, tmp_path, tiny):
    pytest.importorskip("verl")
    from omegaconf import OmegaConf
    from verl.utils.dataset.rl_dataset import RLHFDataset

    tokenizer, processor = tiny
    out = tmp_path / "rl.parquet"
    summary = write_rl(records, out, options=ImageOptions(max_pixels=MAX_PIXELS))
    assert (summary.rows_out, summary.images) == (4, 2)
    config = OmegaConf.create({"max_prompt_length": 4096, "filter_overlong_prompts": True,
                               "filter_overlong_prompts_workers": None, "cache_dir": str(tmp_path / "cache")})
    dataset = RLHFDataset(str(out), tokenizer, config, processor)
    # verl's length filter turns a row it cannot process into "too long": nothing may be dropped.
    assert len(dataset) == 4
    for i, record in enumerate(records):
        item = dataset[i]
        assert item["data_source"] == record.source
        assert item["reward_model"] == {"style": "rule", "ground_truth": record.ground_truth}
        assert item["extra_info"]["id"] == record.id and item["extra_info"]["index"] == i
        messages = item["raw_prompt"]
        images, _, _ = RLHFDataset._process_multi_modal_info(messages, dataset.image_patch_size, config)
        assert len(images or []) == len(record.images)
        text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        inputs = processor(text=[text], images=images, return_tensors="pt")
        n_image_tokens = int((inputs["input_ids"] == _image_token_id(processor)).sum())
        if record.images:
            merge = processor.image_processor.merge_size ** 2
            assert n_image_tokens == int(inputs["image_grid_thw"].prod(-1).sum()) // merge
            assert 0 < n_image_tokens <= MAX_PIXELS // (28 * 28)
        else:
            assert n_image_tokens == 0


def test_rl_extra_info_has_one_schema(records, tmp_path):
    out = tmp_path / "rl.parquet"
    write_rl(records, out)
    table = pq.read_table(out)
    assert table.schema.equals(RL_SCHEMA)
    assert table.schema.field("extra_info").type == EXTRA_INFO_TYPE
    infos = table.column("extra_info").to_pylist()
    assert {tuple(info) for info in infos} == {tuple(f.name for f in EXTRA_INFO_TYPE)}
    assert [info["modality"] for info in infos] == ["text", "text", "image", "text_image"]
    assert all(info["concat_of"] == [] for info in infos)
    assert table.column("images").to_pylist()[0] == []


def test_sft_parquet_loads_in_verl_multiturn_dataset(records, tmp_path, tiny):
    pytest.importorskip("verl")
    from verl.utils.dataset.multiturn_sft_dataset import MultiTurnSFTDataset

    tokenizer, processor = tiny
    out = tmp_path / "sft.parquet"
    summary = write_sft(records, out, options=ImageOptions(max_pixels=MAX_PIXELS))
    assert summary.rows_out == 4
    dataset = MultiTurnSFTDataset(str(out), tokenizer, {"max_length": 4096, "pad_mode": "no_padding"}, processor)
    assert len(dataset) == 4
    for i, record in enumerate(records):
        item = dataset[i]
        ids = item["input_ids"]
        n_image_tokens = int((ids == _image_token_id(processor)).sum())
        if record.images:
            grid = item["multi_modal_inputs"]["image_grid_thw"]
            assert n_image_tokens == int(grid.prod(-1).sum()) // processor.image_processor.merge_size ** 2
        else:
            assert n_image_tokens == 0
        trained = tokenizer.decode(ids[item["loss_mask"].bool()])
        assert "<result>" in trained and "Human user:" not in trained  # loss on the assistant turn only


def test_sft_rejects_missing_or_contradicting_target(records, tmp_path):
    wrong = records[1].evolve(reasoning=format_output("x", "unharmful", "unharmful"))  # labels say harmful
    with pytest.raises(RowError, match=r"row 't1', field 'reasoning': target reads"):
        write_sft([wrong], tmp_path / "a.parquet")
    assert not (tmp_path / "a.parquet").exists()
    policy = ErrorPolicy("skip")
    summary = write_sft([records[0].evolve(reasoning=None), wrong, records[2]], tmp_path / "b.parquet", policy=policy)
    assert summary.rows_out == 1
    assert dict(summary.skipped) == {"no reasoning target": 1, "target disagrees with labels": 1}


def test_crash_mid_write_leaves_no_output(records, tmp_path):
    def exploding():
        yield from records
        raise RuntimeError("killed mid-write")

    out = tmp_path / "rl.parquet"
    with pytest.raises(RuntimeError, match="killed"):
        write_rl(exploding(), out)
    assert list(tmp_path.glob("*.parquet")) == [] and not any(p.name.startswith(".rl") for p in tmp_path.iterdir())


def test_sink_flushes_row_groups_and_types_empty_output(tmp_path):
    rows = [{"data_source": "s", "prompt": [], "images": [], "ability": "a",
             "reward_model": {"style": "rule", "ground_truth": "g"}, "extra_info": None}] * 25
    with ParquetSink(tmp_path / "x.parquet", RL_SCHEMA, rows_per_group=10, image_rows_per_group=3) as sink:
        for row in rows[:20]:
            sink.write(row)
        for row in rows[20:]:
            sink.write(row, has_images=True)
    meta = pq.ParquetFile(tmp_path / "x.parquet").metadata
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [10, 10, 3, 2]
    with ParquetSink(tmp_path / "empty.parquet", RL_SCHEMA):
        pass
    assert pq.read_table(tmp_path / "empty.parquet").schema.equals(RL_SCHEMA)


def test_image_resize_and_token_estimate(records, tmp_path):
    summary = write_rl(records, tmp_path / "rl.parquet", options=ImageOptions(max_side=300))
    assert summary.images_resized == 1  # only the 900x300 image
    stored = pq.read_table(tmp_path / "rl.parquet").column("images").to_pylist()[3][0]["bytes"]
    import io

    assert Image.open(io.BytesIO(stored)).size == (300, 100)
    assert estimate_image_tokens(28, 28, max_pixels=10 * 784, min_pixels=4 * 784) == 4 + 2
    assert estimate_image_tokens(2800, 2800, max_pixels=10 * 784, min_pixels=4 * 784) == 10 + 2
    assert summary.est_prompt_tokens_max >= summary.est_prompt_tokens_mean > 0


def test_llamafactory_export(records, tmp_path):
    (tmp_path / "lf").mkdir()
    (tmp_path / "lf" / "dataset_info.json").write_text(json.dumps({"other": {"file_name": "o.json"}}))
    summary = export_llamafactory(records, tmp_path / "lf", name="gr")
    rows = json.loads((tmp_path / "lf" / "gr.json").read_text())
    info = json.loads((tmp_path / "lf" / "dataset_info.json").read_text())
    assert summary.rows_out == 4 and set(info) == {"other", "gr"}
    assert info["gr"]["formatting"] == "sharegpt" and info["gr"]["columns"] == {"messages": "messages", "images": "images"}
    for row, record in zip(rows, records):
        assert [m["role"] for m in row["messages"]] == ["system", "user", "assistant"]
        assert row["messages"][1]["content"].count("<image>") == len(row["images"]) == len(record.images)
        for image in row["images"]:
            assert (tmp_path / "lf" / image).is_file()


def test_eval_file_is_a_records_jsonl_with_normalised_images(records, tmp_path):
    from data_prep.records_io import read_records

    benchmark = [r.evolve(source="Mini", meta={"tasks": ["response"], "unlabelled": ["request"]}) for r in records]
    summary = write_eval_file(benchmark, tmp_path / "eval" / "Mini.jsonl", options=ImageOptions(max_side=32))
    assert summary.rows_out == 4 and summary.images == sum(len(r.images) for r in records)
    back = list(read_records(tmp_path / "eval" / "Mini.jsonl"))
    assert [(r.id, r.response, r.response_label, r.modality, r.meta) for r in back] == \
        [(r.id, r.response, r.response_label, r.modality, r.meta) for r in benchmark]
    for record in back:
        for image in record.images:  # stored next to the file, shrunk to the size cap
            assert Path(image).is_relative_to(tmp_path / "eval" / "images")
            with Image.open(image) as im:
                assert max(im.size) <= 32


def test_training_writers_refuse_placeholder_labels(tmp_path, sample_dir):
    """A response-only benchmark gives no request label: RL/SFT must not train on the reader's placeholder."""
    from data_prep.readers import read_benchmark

    path = sample_dir / "benchmarks" / "HarmBenchResponse.json"
    rows = list(read_benchmark("HarmBenchResponse", path))
    with pytest.raises(RowError, match="request_label.*no request label"):
        write_rl(rows, tmp_path / "rl.parquet")
    assert not (tmp_path / "rl.parquet").exists()
    summary = write_rl(rows, tmp_path / "rl.parquet", policy=ErrorPolicy("skip"))
    assert summary.rows_out == 0 and dict(summary.skipped) == {"unlabelled slot": len(rows)}
    with pytest.raises(RowError, match="no request label"):
        write_sft([r.evolve(reasoning=format_output("x", r.request_label, r.response_label)) for r in rows],
                  tmp_path / "sft.parquet")
