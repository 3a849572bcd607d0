"""The vllm backend's pure parts, with the tiny model's real processor (vLLM itself is not installed
here): the prompt it hands ``LLM.generate``, the exact prompt length, ``max_model_len`` sized from
the pixel budget and token limits, rows too long refused alone, and explicit sampling."""

from __future__ import annotations

import logging

import pytest

pytest.importorskip("transformers")
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from data_prep.record import GuardRecord
from inference import request_from_record
from inference.base import pixel_limits
from inference.vllm_offline import (
    build_prompt,
    effective_pixel_limits,
    engine_kwargs,
    fit_prompts,
    prompt_tokens,
    sampling_kwargs,
    size_max_model_len,
)


@pytest.fixture(scope="module")
def processor(tiny_model_dir):
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(str(tiny_model_dir))


def _record(rid: str, text: str = "What is shown here?", size=None, response=None) -> GuardRecord:
    images = () if size is None else (Image.new("RGB", size, (120, 30, 200)),)
    return GuardRecord(id=rid, source="s", request=text, request_label="unharmful", images=images,
                       response=response, response_label=None if response is None else "unharmful")  # fmt: skip


def _processed_length(processor, prompt, limits) -> int:
    """What the processor itself produces for the prompt (the ground truth for prompt_tokens)."""
    kwargs = {"text": [prompt["prompt"]], "return_tensors": "pt"}
    if "multi_modal_data" in prompt:
        kwargs.update(images=[prompt["multi_modal_data"]["image"]], **limits)
    return int(processor(**kwargs)["input_ids"].shape[1])


def test_prompt_is_the_chat_template_text_with_the_image_in_place(processor):
    prompt = build_prompt(processor, request_from_record(_record("r", size=(40, 30))))
    assert "Human user:\n<|vision_start|><|image_pad|><|vision_end|>\nWhat is shown here?\n" in prompt["prompt"]
    assert prompt["prompt"].endswith("<|im_start|>assistant\n")
    image = prompt["multi_modal_data"]["image"]
    assert (image.mode, image.size) == ("RGB", (40, 30))
    assert "multi_modal_data" not in build_prompt(processor, request_from_record(_record("t")))


@settings(max_examples=25, deadline=None)
@given(width=st.integers(8, 900), height=st.integers(8, 900), words=st.integers(0, 200),
       max_pixels=st.none() | st.sampled_from([28 * 28 * 4, 28 * 28 * 9, 100_000]))  # fmt: skip
def test_prompt_length_is_exactly_what_the_processor_makes(processor, width, height, words, max_pixels):
    limits = effective_pixel_limits(processor.image_processor, max_pixels)
    text = "word " * words + "end"
    for record in (_record("t", text), _record("i", text, size=(width, height))):
        prompt = build_prompt(processor, request_from_record(record))
        assert prompt_tokens(processor, prompt, limits) == _processed_length(processor, prompt, limits)


def test_engine_gets_both_pixel_limits_and_a_sized_context(processor):
    ip = processor.image_processor
    kwargs = engine_kwargs("/models/guard", image_processor=ip, max_pixels=28 * 28 * 9, max_new_tokens=512)
    assert kwargs["mm_processor_kwargs"] == {"min_pixels": 28 * 28 * 4, "max_pixels": 28 * 28 * 9} == pixel_limits(ip, 28 * 28 * 9)
    assert kwargs["max_model_len"] == size_max_model_len(512, 28 * 28 * 9) == 4096 + 9 + 2 + 512
    assert kwargs["limit_mm_per_prompt"] == {"image": 1}
    own = engine_kwargs("/models/guard", image_processor=ip, max_pixels=None, max_new_tokens=512)
    assert own["mm_processor_kwargs"] is None  # the processor's own limits, as in the paper's evaluation
    assert own["max_model_len"] == 4096 + 12544 // 784 + 2 + 512
    assert engine_kwargs("/m", image_processor=ip, max_pixels=None, max_new_tokens=512, max_model_len=777)["max_model_len"] == 777


@settings(max_examples=20, deadline=None)
@given(width=st.integers(8, 2000), height=st.integers(8, 2000))
def test_any_image_within_the_text_allowance_fits_the_sized_context(processor, width, height):
    ip = processor.image_processor
    kwargs = engine_kwargs("/m", image_processor=ip, max_pixels=28 * 28 * 9, max_new_tokens=64)
    limits = effective_pixel_limits(ip, 28 * 28 * 9)
    prompt = build_prompt(processor, request_from_record(_record("i", "word " * 500, size=(width, height))))
    assert prompt_tokens(processor, prompt, limits) + 64 <= kwargs["max_model_len"]


def test_a_row_too_long_is_refused_alone_with_its_id(processor, caplog):
    limits = effective_pixel_limits(processor.image_processor, None)
    requests = [request_from_record(r) for r in (
        _record("short"), _record("long", "word " * 3000), _record("image", size=(64, 64)))]  # fmt: skip
    lengths = [prompt_tokens(processor, build_prompt(processor, r), limits) for r in requests]
    max_model_len = max(lengths[0], lengths[2]) + 16
    with caplog.at_level(logging.WARNING, logger="inference.vllm_offline"):
        prompts = fit_prompts(processor, requests, limits=limits, max_model_len=max_model_len, max_new_tokens=16)
    assert [p is None for p in prompts] == [False, True, False]
    [said] = caplog.records
    assert "'long'" in said.getMessage() and f"prompt of {lengths[1]} tokens" in said.getMessage()


def test_sampling_is_explicit_and_seeds_are_the_requests_own():
    sampled = sampling_kwargs(4, 1.0, 0.95, 256, seed=8)
    assert sampled == {"n": 4, "temperature": 1.0, "top_p": 0.95, "top_k": -1, "min_p": 0.0,
                       "repetition_penalty": 1.0, "max_tokens": 256, "seed": 8}  # fmt: skip
    assert sampling_kwargs(4, 0.0, 1.0, 256, seed=None)["n"] == 1  # greedy: one, copied by the caller
