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


def _image_tokens(backend, request) -> int:
    inputs = backend._encode([request])
    pad_id = backend.processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    return int((inputs["input_ids"] == pad_id).sum())


def test_max_pixels_reaches_the_processor(tiny_model_dir, backend):
    """transformers 5 ignores a call-time max_pixels without min_pixels; the backend passes both."""
    record = GuardRecord(id="big", source="s", request="What is it?", request_label="unharmful",
                         images=(Image.new("RGB", (224, 224), (10, 20, 30)),))  # fmt: skip
    request = request_from_record(record)
    own = _image_tokens(backend, request)  # the tiny processor's own cap: 12,544 pixels = 16 tokens
    capped = get_backend("hf", model_path=tiny_model_dir, batch_size=1, device="cpu", max_pixels=28 * 28 * 4)
    assert (own, _image_tokens(capped, request)) == (16, 4)
    # the quirk itself: handed alone, the cap changes nothing (why both limits are passed)
    image = [Image.new("RGB", (224, 224))]
    alone = backend.processor.image_processor(images=image, max_pixels=28 * 28 * 4)["image_grid_thw"]
    assert int(alone.prod()) // 4 == own


def test_cut_answers_say_so(backend):
    [gens] = backend.generate([request_from_record(_records()[0])], max_new_tokens=5)
    # the random tiny model never writes an end-of-sequence token: every answer runs to the limit
    assert (gens[0].num_tokens, gens[0].finish_reason, gens[0].truncated) == (5, "length", True)


def test_checkpoint_sampling_defaults_do_not_leak(tiny_model_dir, near_greedy_model_dir, backend):
    """generation_config.json with top_k 1 and repetition_penalty 1.5: samples still differ, and greedy
    answers equal those of the same weights without those defaults."""
    near_greedy = get_backend("hf", model_path=near_greedy_model_dir, batch_size=2, device="cpu")
    requests = [request_from_record(r) for r in _records()]
    sampled = near_greedy.generate(requests, n=3, temperature=1.0, top_p=1.0, max_new_tokens=8, seed=0)
    assert all(len({g.text for g in gens}) == 3 for gens in sampled)
    assert near_greedy.generate(requests, max_new_tokens=12) == backend.generate(requests, max_new_tokens=12)
    # the defaults are strong enough to show: applied, they change the greedy answer
    import torch

    inputs = near_greedy._encode(requests[:1])
    with torch.inference_mode():
        applied = near_greedy.model.generate(**inputs, do_sample=False, max_new_tokens=12)
    leaked = near_greedy.processor.batch_decode(applied[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)[0]
    assert leaked != backend.generate(requests[:1], max_new_tokens=12)[0][0].text
