"""The tiny local Qwen2.5-VL: loads like the real one, is reproducible, and never emits vision tokens."""

from __future__ import annotations

import copy
import io
import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from PIL import Image  # noqa: E402

from data_prep.prompt import INSTRUCTION, build_messages, to_structured_content  # noqa: E402
from demo import tiny_model as tm  # noqa: E402
from rewards.grammar import format_output, parse_verdict  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny matmuls on a busy 2-core machine run ~10x faster on one thread than on two."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def processor(tiny_model_dir):
    return transformers.AutoProcessor.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="module")
def model(tiny_model_dir):
    return transformers.AutoModelForImageTextToText.from_pretrained(tiny_model_dir).eval()


@pytest.fixture(scope="module")
def forbidden_ids(processor) -> list[int]:
    return processor.tokenizer.convert_tokens_to_ids(list(tm.VISION_TOKENS))


def _png(width: int, height: int, colour=(200, 40, 40)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buf, format="PNG")
    return buf.getvalue()


def _inputs(processor, request: str, image: Image.Image | None, *, copies: int = 1):
    """Processor inputs for ``copies`` identical guard prompts (so no padding is involved)."""
    messages = to_structured_content(build_messages(request, None, has_image=image is not None))
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    images = [image] * copies if image is not None else None
    return processor(text=[text] * copies, images=images, return_tensors="pt")


# ----------------------------------------------------------------------------- loading


def test_loads_with_auto_classes_and_verl_helpers(tiny_model_dir, processor, model):
    from verl.utils import hf_processor, hf_tokenizer

    assert type(processor).__name__ == "Qwen2_5_VLProcessor"
    assert type(processor.image_processor).__name__.startswith("Qwen2VLImageProcessor")
    assert isinstance(processor.tokenizer, transformers.Qwen2TokenizerFast)
    assert type(model).__name__ == "Qwen2_5_VLForConditionalGeneration"
    assert model.dtype == torch.float32
    assert type(hf_processor(str(tiny_model_dir))).__name__ == "Qwen2_5_VLProcessor"
    verl_tok = hf_tokenizer(str(tiny_model_dir))
    assert (verl_tok.eos_token, verl_tok.pad_token, verl_tok.bos_token) == ("<|im_end|>", "<|endoftext|>", None)
    assert verl_tok.chat_template == tm.CHAT_TEMPLATE  # the SFT dataset tokenises with the tokenizer alone


def test_special_token_ids_agree_between_tokenizer_config_and_generation_config(processor, model, forbidden_ids):
    tok, cfg = processor.tokenizer, model.config
    ids = tok.convert_tokens_to_ids(list(tm.QWEN_SPECIAL_TOKENS))
    assert ids == list(range(ids[0], ids[0] + len(ids))), "Qwen's special tokens are consecutive, in Qwen's order"
    assert cfg.image_token_id == tok.convert_tokens_to_ids("<|image_pad|>") == processor.image_token_id
    assert cfg.video_token_id == tok.convert_tokens_to_ids("<|video_pad|>")
    assert cfg.vision_start_token_id == tok.convert_tokens_to_ids("<|vision_start|>")
    assert cfg.vision_end_token_id == tok.convert_tokens_to_ids("<|vision_end|>")
    assert cfg.text_config.vocab_size == len(tok) >= 2000
    assert cfg.text_config.eos_token_id == tok.eos_token_id
    assert cfg.text_config.pad_token_id == tok.pad_token_id
    gen = model.generation_config
    assert gen.eos_token_id == [tok.convert_tokens_to_ids("<|im_end|>"), tok.convert_tokens_to_ids("<|endoftext|>")]
    assert sorted(gen.suppress_tokens) == sorted(forbidden_ids)
    text = cfg.text_config
    head_dim = text.hidden_size // text.num_attention_heads
    assert 2 * sum(text.rope_parameters["mrope_section"]) == head_dim
    assert len(text.layer_types) == text.num_hidden_layers


def test_guard_output_is_short_and_survives_decoding(processor):
    tok = processor.tokenizer
    output = format_output("## Reasoning Step 1: The user asks how to bake bread.", "unharmful", None)
    ids = tok(output, add_special_tokens=False)["input_ids"]
    for tag in tm.REASONING_TOKENS:  # one token each
        assert tok.convert_tokens_to_ids(tag) in ids
    assert len(ids) < 40
    decoded = tok.decode(ids, skip_special_tokens=True)
    assert decoded == output
    assert parse_verdict(decoded).format_ok


def test_chat_template_matches_qwen2_vl_layout(processor):
    tok = processor.tokenizer
    conversation = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    assert tok.apply_chat_template(conversation, tokenize=False) == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\nhello<|im_end|>\n"
    )
    messages = to_structured_content(build_messages("What does the sign say?", None, has_image=True))
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert text == (
        f"<|im_start|>system\n{INSTRUCTION}<|im_end|>\n"
        "<|im_start|>user\nHuman user:\n<|vision_start|><|image_pad|><|vision_end|>\nWhat does the sign say?\n\n"
        "AI assistant:\nNone\n\n<|im_end|>\n<|im_start|>assistant\n"
    )


# ----------------------------------------------------------------------------- reproducibility


def test_same_seed_gives_identical_files_and_another_seed_other_weights(tiny_model_dir, tmp_path):
    from cli.main import main

    again = tm.build_tiny_model(tmp_path / "again", seed=0)
    names = sorted(p.name for p in Path(tiny_model_dir).iterdir())
    assert names == sorted(p.name for p in again.iterdir())
    assert "model.safetensors" in names and "generation_config.json" in names
    for name in names:
        assert (again / name).read_bytes() == (Path(tiny_model_dir) / name).read_bytes(), name

    assert main(["make-tiny-model", "-o", str(tmp_path / "seed1"), "--seed", "1"]) == 0
    other = tmp_path / "seed1"
    assert (other / "tokenizer.json").read_bytes() == (again / "tokenizer.json").read_bytes()
    assert (other / "model.safetensors").read_bytes() != (again / "model.safetensors").read_bytes()
    assert json.loads((other / "tiny_model_info.json").read_text())["certified_margin_nats"] >= 100


def test_weights_are_small(tiny_model_dir):
    assert (Path(tiny_model_dir) / "model.safetensors").stat().st_size < 5_000_000
    assert sum(p.stat().st_size for p in Path(tiny_model_dir).iterdir()) < 5_000_000


# ----------------------------------------------------------------------------- generation


@pytest.mark.parametrize("with_image", [False, True], ids=["text", "image"])
def test_generates_on_cpu(processor, model, with_image):
    image = Image.new("RGB", (90, 60), (30, 120, 200)) if with_image else None
    inputs = _inputs(processor, "What does this sign say?", image)
    n_image = int((inputs["input_ids"] == model.config.image_token_id).sum())
    if with_image:
        assert n_image == int(inputs["image_grid_thw"].prod()) // 4 > 0
    else:
        assert n_image == 0
    out = model.generate(**inputs, max_new_tokens=12, do_sample=False)
    new = out[0, inputs["input_ids"].shape[1] :]
    assert 0 < len(new) <= 12
    assert isinstance(processor.decode(new, skip_special_tokens=True), str)


def test_certified_margin_holds_by_construction_only(model, forbidden_ids, tiny_model_dir):
    assert tm.certified_margin(model, forbidden_ids) == pytest.approx(tm.FORBIDDEN_MARGIN, abs=1e-3)
    # The same config without the construction certifies nothing: the bound is not vacuous.
    torch.manual_seed(0)
    plain = transformers.Qwen2_5_VLForConditionalGeneration(model.config)
    assert tm.certified_margin(plain, forbidden_ids) < 0


def test_certified_margin_is_a_lower_bound_for_trained_looking_weights(model, forbidden_ids):
    """Perturb every weight (as training would, including the anchor rows): the certificate shrinks
    but what the model really does on random inputs never falls below it."""
    perturbed = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for param in perturbed.parameters():
            param.add_(0.002 * torch.randn(param.shape, generator=generator))
    bound = tm.certified_margin(perturbed, forbidden_ids)
    assert 0 < bound < tm.FORBIDDEN_MARGIN
    input_ids = torch.randint(0, perturbed.config.text_config.vocab_size, (8, 64), generator=generator)
    input_ids[torch.isin(input_ids, torch.tensor(forbidden_ids))] = 0  # no stray image tokens
    with torch.no_grad():
        logits = perturbed(input_ids=input_ids).logits
    gap = logits.max(-1).values - logits[..., forbidden_ids].max(-1).values
    assert float(gap.min()) >= bound


def test_sampling_from_raw_logits_never_emits_a_vision_token(processor, model, forbidden_ids):
    """Temperature 1.2, no top-k/top-p, no suppress_tokens: only the weights stand in the way.

    The random model's next-token distribution is nearly flat over ~2k tokens, so without the
    construction these ~1,500 samples would hit one of the 5 vision tokens about 3 times; the
    logit check below is the deterministic part of the proof.
    """
    raw = transformers.GenerationConfig(
        do_sample=True,
        temperature=1.2,
        top_k=0,
        top_p=1.0,
        max_new_tokens=48,
        eos_token_id=None,
        pad_token_id=processor.tokenizer.pad_token_id,
    )
    # A copy whose saved defaults (suppress_tokens) cannot be merged back into ``raw``.
    model = copy.deepcopy(model)
    model.generation_config = transformers.GenerationConfig(pad_token_id=processor.tokenizer.pad_token_id)
    forbidden = torch.tensor(forbidden_ids)
    sampled = 0
    for request, image in (
        ("Write a rude insult about my coworker.", None),
        ("What does this sign say?", Image.new("RGB", (120, 70), (240, 200, 10))),
    ):
        inputs = _inputs(processor, request, image, copies=16)
        torch.manual_seed(len(request))
        out = model.generate(**inputs, generation_config=raw)
        new = out[:, inputs["input_ids"].shape[1] :]
        sampled += new.numel()
        assert not torch.isin(new, forbidden).any()
        # Along the sampled path (prompt, image tokens included) the vision tokens stay far below
        # the best token.
        full = {**inputs, "input_ids": out, "attention_mask": torch.ones_like(out)}
        if "mm_token_type_ids" in full:
            full["mm_token_type_ids"] = torch.nn.functional.pad(inputs["mm_token_type_ids"], (0, new.shape[1]))
        with torch.no_grad():
            logits = model(**full).logits
        gap = logits.max(-1).values - logits[..., forbidden].max(-1).values
        assert float(gap.min()) >= tm.FORBIDDEN_MARGIN
    assert sampled >= 1500


# ----------------------------------------------------------------------------- verl's dataset


def test_multimodal_parquet_row_through_verl_rlhf_dataset(tiny_model_dir, tmp_path):
    """A 112x56 image is 8x4 patches of 14 px = 32 patches = 8 tokens after the 2x2 merge."""
    pyarrow = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq
    from omegaconf import OmegaConf
    from verl.utils import hf_processor, hf_tokenizer
    from verl.utils.dataset.rl_dataset import RLHFDataset
    from verl.utils.tokenizer.tokenizer import build_multimodal_processor_inputs

    def row(request: str, images: list[dict]) -> dict:
        return {
            "data_source": "tiny",
            "prompt": build_messages(request, None, has_image=bool(images)),
            "images": images,
            "reward_model": {"style": "rule", "ground_truth": "Request: unharmful\nResponse: None"},
            "extra_info": {"index": 0},
        }

    path = tmp_path / "rows.parquet"
    rows = [row("How do I bake bread?", []), row("What does this sign say?", [{"bytes": _png(112, 56)}])]
    pq.write_table(pyarrow.Table.from_pylist(rows), path)

    tokenizer, processor = hf_tokenizer(str(tiny_model_dir)), hf_processor(str(tiny_model_dir))
    config = OmegaConf.create(
        {"max_prompt_length": 512, "filter_overlong_prompts": True, "filter_overlong_prompts_workers": None,
         "cache_dir": str(tmp_path / "cache")}
    )
    dataset = RLHFDataset(str(path), tokenizer, config, processor=processor)
    assert len(dataset) == 2  # neither row is dropped as overlong or broken

    messages = dataset[1]["raw_prompt"]
    images, videos, _ = RLHFDataset._process_multi_modal_info(
        messages, image_patch_size=processor.image_processor.patch_size, config=config
    )
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    inputs = build_multimodal_processor_inputs(processor, text=[text], images=images, videos=videos)
    assert inputs["image_grid_thw"].tolist() == [[1, 4, 8]]
    assert int((inputs["input_ids"] == processor.image_token_id).sum()) == 8
