"""The hf backend on the tiny Qwen2.5-VL: batching, greedy/sampled decoding, seeds, image placement."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
from PIL import Image

from data_prep.record import GuardRecord
from inference import get_backend, request_from_record


@pytest.fixture(scope="module")
def backend(tiny_model_dir):
    return get_backend("hf", model_path=tiny_model_dir, batch_size=2, device="cpu")


def _records(tmp_path=None):
    img = Image.new("RGB", (40, 30), (120, 30, 200))
    return [
        GuardRecord(id="text", source="s", request="How do I bake bread?", request_label="unharmful"),
        GuardRecord(id="text-image", source="s", request="What is shown here?", request_label="unharmful",
                    images=(img,), response="A purple square.", response_label="unharmful"),  # fmt: skip
        GuardRecord(id="image", source="s", request="", request_label="harmful", images=(img,)),
    ]


def test_image_tokens_stand_where_the_placeholder_is(backend):
    text_image, image_only = (request_from_record(r) for r in _records()[1:])
    prompt = backend.prompt_text(text_image)
    assert "Human user:\n<|vision_start|><|image_pad|><|vision_end|>\nWhat is shown here?\n" in prompt
    assert prompt.count("<|image_pad|>") == 1
    assert "Human user:\n<|vision_start|><|image_pad|><|vision_end|>\n\nAI assistant:\nNone\n\n" in backend.prompt_text(
        image_only
    )
    # The processor expands the one placeholder to the image's patch tokens.
    inputs = backend._encode([text_image])
    pad_id = backend.processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    merge = backend.processor.image_processor.merge_size ** 2
    assert int((inputs["input_ids"] == pad_id).sum()) == int(inputs["image_grid_thw"].prod()) // merge


def test_greedy_is_deterministic_and_batch_independent(backend):
    requests = [request_from_record(r) for r in _records()]
    batched = backend.generate(requests, n=2, max_new_tokens=12)
    assert [len(g) for g in batched] == [2, 2, 2]
    assert all(g[0] == g[1] for g in batched)  # greedy: n identical copies
    alone = [backend.generate([r], max_new_tokens=12)[0][0] for r in requests]
    assert [g[0] for g in batched] == alone  # left padding does not change what a row generates
    for gens in batched:
        assert 1 <= gens[0].num_tokens <= 12


def test_sampling_is_seeded(backend):
    requests = [request_from_record(r) for r in _records()[:2]]
    kw = {"n": 3, "temperature": 1.0, "top_p": 0.95, "max_new_tokens": 6}
    a = backend.generate(requests, seed=11, **kw)
    assert a == backend.generate(requests, seed=11, **kw)
    assert a[:1] != backend.generate(requests[:1], seed=12, **kw)
    assert [len(g) for g in a] == [3, 3]


def test_missing_image_file_names_the_record(backend, tmp_path):
    record = GuardRecord(id="row-9", source="s", request="x", request_label="harmful", images=(str(tmp_path / "no.png"),))
    with pytest.raises(ValueError, match="row 'row-9'.*image file not found: .*no.png"):
        backend.generate([request_from_record(record)], max_new_tokens=2)


def test_bad_model_dir_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no config.json"):
        get_backend("hf", model_path=tmp_path)


def test_vllm_absence_is_a_clear_error():
    try:
        import vllm  # noqa: F401
    except ImportError:
        with pytest.raises(ValueError, match="needs the vllm package"):
            get_backend("vllm", model_path="unused")
    else:  # pragma: no cover - GPU hosts
        pytest.skip("vllm is installed")
