"""Hard-sample mining with the real hf backend and the tiny model; resume after interruption; split."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from evaluation.mining import is_correct, load_results, mine
from data_prep.readers import read_vltrain
from data_prep.record import GuardRecord
from data_prep.records_io import read_records
from data_prep.split import split_pool
from rewards.grammar import format_output


@pytest.fixture(scope="module")
def sample_records(sample_dir) -> list[GuardRecord]:
    records = list(read_vltrain(sample_dir / "vltrain"))
    by_modality: dict[str, list] = {}
    for record in records:
        by_modality.setdefault(record.modality, []).append(record)
    return [r for group in by_modality.values() for r in group[:2]]  # 2 per modality: fast


@pytest.fixture(scope="module")
def backend(tiny_model_dir):
    from inference import get_backend

    return get_backend("hf", model_path=tiny_model_dir, batch_size=4)


class Interrupting:
    """The real backend, interrupted (like Ctrl-C) once it has served ``calls`` batches; counts requests."""

    def __init__(self, inner, calls: int) -> None:
        self.inner, self.calls, self.requested = inner, calls, []

    def generate(self, requests, **kwargs):
        if self.calls == 0:
            raise KeyboardInterrupt
        self.calls -= 1
        self.requested.extend(r.key for r in requests)
        return self.inner.generate(requests, **kwargs)


def test_is_correct_rules():
    record = GuardRecord(id="r", source="s", request="q", request_label="harmful")
    assert is_correct(format_output("t", "harmful", None), record)
    assert is_correct(format_output("t", "harmful", "unharmful"), record)  # none scores as unharmful
    assert not is_correct(format_output("t", "unharmful", None), record)
    assert not is_correct("no result block at all", record)  # parse failure = wrong, never a label


def test_mine_with_hf_backend_and_resume(sample_records, backend, tmp_path):
    kwargs = dict(results_path=tmp_path / "results.jsonl", pool_path=tmp_path / "pool.jsonl",
                  report_path=tmp_path / "report.json", k=2, max_new_tokens=4, batch_size=2, seed=0)
    first = Interrupting(backend, calls=1)
    with pytest.raises(KeyboardInterrupt):
        mine(sample_records, first, **kwargs)
    assert not (tmp_path / "pool.jsonl").exists()  # the pool only appears when mining finishes
    done = load_results(tmp_path / "results.jsonl")
    assert list(done) == first.requested == [r.id for r in sample_records[:2]]

    second = Interrupting(backend, calls=100)
    summary = mine(sample_records, second, **kwargs)
    assert second.requested == [r.id for r in sample_records[2:]]  # finished ids are not generated again
    assert (summary.rows, summary.resumed, summary.generated) == (6, 2, 4)
    rows = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert sorted(r["id"] for r in rows) == sorted(r.id for r in sample_records)
    assert all(r["k"] == 2 and len(r["predictions"]) == 2 for r in rows)
    hard = {r["id"] for r in rows if r["hard"]}
    assert all(r["hard"] == (r["n_correct"] == 0) for r in rows)
    assert {r.id for r in read_records(tmp_path / "pool.jsonl")} == hard
    report = json.loads((tmp_path / "report.json").read_text())
    assert {m: v["rows"] for m, v in report["by_modality"].items()} == {"text": 2, "image": 2, "text_image": 2}
    assert report["k"] == 2 and report["temperature"] == 1.0 and report["top_p"] == 0.95


def test_keep_all_modality_and_truncated_results(sample_records, backend, tmp_path):
    results = tmp_path / "results.jsonl"
    results.write_text(json.dumps({"id": "elsewhere", "k": 2, "hard": True, "kept": True}) + "\n{\"id\": \"cut")
    counting = Interrupting(backend, calls=100)
    summary = mine(sample_records, counting, results_path=results, pool_path=tmp_path / "pool.jsonl",
                   k=2, max_new_tokens=4, batch_size=8, keep_all_modalities=("image",))
    images = {r.id for r in sample_records if r.modality == "image"}
    assert images.isdisjoint(counting.requested)  # kept unfiltered, never generated
    assert images <= {r.id for r in read_records(tmp_path / "pool.jsonl")}
    assert summary.report()["by_modality"]["image"]["kept_unfiltered"] == 2
    assert len(results.read_text().splitlines()) == 1 + len(sample_records)  # the cut line was dropped
    with pytest.raises(ValueError, match="k=2, not k=3"):
        mine(sample_records, backend, results_path=results, pool_path=tmp_path / "p2.jsonl", k=3)
    # Resumed without the option, the rows kept unfiltered before are mined now (off by default).
    again = Interrupting(backend, calls=100)
    summary = mine(sample_records, again, results_path=results, pool_path=tmp_path / "p3.jsonl",
                   k=2, max_new_tokens=4, batch_size=8)
    assert sorted(again.requested) == sorted(images)
    assert summary.report()["by_modality"]["image"]["kept_unfiltered"] == 0


def test_split_is_seeded():
    pool = [GuardRecord(id=f"r{i}", source="s", request="q", request_label="unharmful") for i in range(100)]
    train, val = split_pool(pool, size=50, val_fraction=0.2, seed=3)
    assert (len(train), len(val)) == (40, 10)
    assert not {r.id for r in train} & {r.id for r in val}
    again = split_pool(pool, size=50, val_fraction=0.2, seed=3)
    assert ([r.id for r in train], [r.id for r in val]) == tuple([r.id for r in part] for part in again)
    assert [r.id for r in split_pool(pool, size=50, seed=4)[1]] != [r.id for r in val]
    assert sum(len(p) for p in split_pool(pool, size=None)) == 100
    with pytest.raises(ValueError, match="duplicate ids"):
        split_pool(pool + pool[:1])
    assert Counter(r.id for r in train + val).most_common(1)[0][1] == 1


class Recording:
    """The real backend; records each call's seed, and refuses the rows in ``too_long`` as vLLM
    offline does for a prompt longer than its context."""

    def __init__(self, inner, too_long=()) -> None:
        self.inner, self.too_long, self.seeds = inner, set(too_long), []

    def generate(self, requests, **kwargs):
        from inference.base import FINISH_PROMPT_TOO_LONG, Generation

        self.seeds.append(kwargs["seed"])
        out = self.inner.generate(requests, **kwargs)
        return [[Generation("", 0, FINISH_PROMPT_TOO_LONG)] * kwargs["n"] if r.key in self.too_long else gens
                for r, gens in zip(requests, out)]  # fmt: skip


def test_seeds_stride_by_k_and_cut_or_refused_answers_are_reported_apart(sample_records, backend, tmp_path):
    refused = sample_records[1].id
    recording = Recording(backend, too_long=[refused])
    summary = mine(sample_records, recording, results_path=tmp_path / "results.jsonl",
                   pool_path=tmp_path / "pool.jsonl", k=3, max_new_tokens=4, batch_size=2, seed=7)  # fmt: skip
    # batch b starts at row 2b: its requests own the seeds 7 + 3 * (2b + i) + j, disjoint across batches
    assert recording.seeds == [7, 13, 19]
    rows = load_results(tmp_path / "results.jsonl")
    assert rows[refused]["refused"] is True and rows[refused]["kept"] is False and rows[refused]["hard"] is None
    generated = [r for r in rows.values() if not r.get("refused")]
    # the tiny model never ends an answer itself: all cut at the limit, counted apart (and still wrong)
    assert all(r["finish_reasons"] == ["length"] * 3 and r["n_truncated"] == 3 for r in generated)
    report = summary.report()
    assert (report["refused"], report["outputs"], report["truncated_outputs"]) == (1, 3 * 5, 3 * 5)
    assert refused not in {r.id for r in read_records(tmp_path / "pool.jsonl")}
    assert summary.kept == len(generated)  # parse failures are wrong: every generated row is hard
