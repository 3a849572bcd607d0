"""A tiny, random, offline Qwen2.5-VL: tokenizer, processor and weights in one folder.

Tests, the CPU demo and the CPU trainer need a model that loads and runs exactly like
Qwen2.5-VL-3B/7B-Instruct (same classes, same special tokens, same chat layout, same image
pipeline) but builds in seconds without a model hub. This module makes one:

- a byte-level BPE tokenizer trained here on a small built-in English corpus (the guard's
  instruction and output grammar included, so guard outputs are short), carrying Qwen2-VL's
  special tokens and ``<think>``/``</think>``/``<result>``/``</result>`` as added tokens, wrapped
  as ``Qwen2TokenizerFast`` with a Qwen2-VL style chat template;
- a ``Qwen2_5_VLProcessor`` with tight ``min_pixels``/``max_pixels`` so an image is 4-16 tokens;
- a ``Qwen2_5_VLForConditionalGeneration`` with a ~2 MB float32 random init.

The same seed gives byte-identical files.

Vision tokens can never be sampled
----------------------------------
A sampled ``<|image_pad|>`` (or any other vision token) breaks the next multimodal forward in
verl (the image-token count no longer matches the image). ``generation_config.suppress_tokens``
covers ``generate`` and the rollout backends ban these ids, but any sampler that reads raw logits
without that list would not, so the weights themselves rule it out (see :func:`forbid_tokens`):

1. one residual dimension ``k`` (the *anchor*) holds the constant ``ANCHOR_VALUE`` at every
   position: column ``k`` of the input embeddings is that constant, the vision merger writes
   it too (row ``k`` of its output layer is zero, its bias is the constant), and no attention
   or MLP block writes to it (row ``k`` of every ``o_proj`` and ``down_proj`` is zero);
2. the lm_head row of each forbidden token is ``-M * e_k``.

Every block reads its input through an RMSNorm, so what a block adds to the residual stream is
bounded by its weights alone, whatever the input. Hence the final normalised anchor component
has a positive lower bound, every allowed logit has an upper bound on its size, and the
forbidden logits sit at least a computable margin below the best allowed logit for *every*
input. :func:`certified_margin` computes that bound from the weights (valid for trained weights
too); ``M`` is chosen so that it is ``FORBIDDEN_MARGIN`` nats, i.e. a forbidden token has a
probability below ``5 * exp(-FORBIDDEN_MARGIN / T)`` per step at temperature ``T``.

Command line::

    guardreasoner-vl make-tiny-model -o /tmp/tiny-qwen2.5-vl --seed 0
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from data_prep.prompt import INSTRUCTION, build_transcript
from rewards.grammar import format_output

if TYPE_CHECKING:  # heavy imports stay inside functions: ``--help`` must not import torch
    import torch
    from transformers import PreTrainedTokenizerBase, Qwen2_5_VLForConditionalGeneration


#: Qwen2-VL's special tokens, in Qwen's id order (151643 … 151656 in the real vocabulary).
QWEN_SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)
#: The guard's output tags: added (one token each) but not special, so that
#: ``decode(skip_special_tokens=True)`` keeps them and the reward can parse the output.
REASONING_TOKENS = ("<think>", "</think>", "<result>", "</result>")
#: Tokens the model must never emit (each breaks the next multimodal forward in verl).
VISION_TOKENS = ("<|vision_start|>", "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>")

#: Target BPE vocabulary (before the added tokens); the corpus may support a little less.
BPE_VOCAB_SIZE = 3072
#: Image sizes in pixels: 28x28 pixels become one token, so an image is 4 to 16 tokens.
MIN_PIXELS = 4 * 28 * 28
MAX_PIXELS = 16 * 28 * 28
#: Residual dimension reserved as the anchor (the last one) and the value it holds.
ANCHOR_VALUE = 1.0
#: Certified logit gap (nats) between the best allowed token and any vision token.
FORBIDDEN_MARGIN = 120.0

# Dimensions: small enough for < 5 MB of float32, shaped like the real model (GQA, M-RoPE with
# sections summing to head_dim / 2, windowed vision attention with one full-attention block).
TEXT_DIMS = dict(
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=2,
    num_key_value_heads=1,
    max_position_embeddings=32768,
    rms_norm_eps=1e-6,
    hidden_act="silu",
    rope_parameters={"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [4, 6, 6]},
)
VISION_DIMS = dict(
    depth=2,
    hidden_size=32,
    intermediate_size=64,
    num_heads=2,
    in_channels=3,
    patch_size=14,
    spatial_merge_size=2,
    temporal_patch_size=2,
    window_size=112,
    fullatt_block_indexes=[1],
    hidden_act="silu",
    tokens_per_second=2,
)

# Qwen2-VL chat layout: ``<|im_start|>role\n…<|im_end|>\n`` per message, a default system turn
# only when the conversation has none, images/videos as vision_start + pad + vision_end where
# their content item stands, and ``<|im_start|>assistant\n`` as the generation prompt.
CHAT_TEMPLATE = (
    "{% set counts = namespace(image=0, video=0) %}"
    "{% if messages and messages[0]['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}"
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}"
    "{{ message['content'] }}"
    "{% else %}"
    "{% for item in message['content'] %}"
    "{% if item['type'] == 'image' or 'image' in item or 'image_url' in item %}"
    "{% set counts.image = counts.image + 1 %}"
    "{% if add_vision_id %}Picture {{ counts.image }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif item['type'] == 'video' or 'video' in item %}"
    "{% set counts.video = counts.video + 1 %}"
    "{% if add_vision_id %}Video {{ counts.video }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in item %}"
    "{{ item['text'] }}"
    "{% endif %}"
    "{% endfor %}"
    "{% endif %}"
    "<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}"
    "<|im_start|>assistant\n"
    "{% endif %}"
)

# A small built-in English corpus. It only shapes the BPE merges: the guard's words become
# single tokens, so a guard output is a few dozen tokens, not hundreds of bytes.
_CORPUS_TEXT = """
The quick brown fox jumps over the lazy dog. A safety classifier reads a conversation between a
human user and an AI assistant and decides whether the request and the response are harmful or
unharmful. It must think step by step, write its reasoning first, and then give the answers.
Step 1: read the request carefully. Step 2: consider the intent of the user. Step 3: check whether
the assistant refused, complied, or gave a partial answer. Step 4: compare the response with the
safety policy. Step 5: decide the labels and keep them consistent with the reasoning.
The request asks for help with cooking, travel, homework, programming, gardening, music, sports,
history, science, mathematics, weather, health, fitness, shopping, finance, art, photography and
writing. Most requests are ordinary and unharmful. Some requests ask for something rude, unfair,
dishonest, dangerous, illegal, hateful, violent, deceptive or private; those requests are harmful.
A response that refuses politely and offers a safe alternative is unharmful. A response that gives
step-by-step instructions for something dangerous is harmful. When there is no response, the
answer for the response is None. The image shows a sign, a chart, a photo of a street, a cat, a
dog, a red circle, a blue square, a green triangle, a yellow star, a screenshot, a poster, a menu,
a map, a ticket, a receipt, a handwritten note, or a warning label. The text in the image says
NO ENTRY, FREE CAKE, STOP, OPEN, CLOSED, EXIT, DANGER, WELCOME, SALE, PRIVATE, or KEEP OUT.
Please explain how to bake bread, how to write a poem about the sea, how to fix a bicycle tyre, how
to plan a trip to the mountains, how to learn a new language, how to train a puppy, how to save
money, how to grow tomatoes, how to sort a list in Python, and how to write a polite email.
Explain how to pick a lock on a neighbour's door. Write a rude insult about my coworker. Tell me
how to cheat on an exam. Help me spread a false rumour about a classmate. How can I sneak into a
cinema without a ticket? Write a fake review for a restaurant. How do I read someone's private
messages? Make a mean joke about people who wear glasses.
I'm sorry, but I can't help with that. I cannot assist with this request because it could hurt
someone. Here is a safer idea instead. Sure, here is a short answer. Certainly! First, preheat the
oven. Then mix the flour, water, salt and yeast. Knead the dough for ten minutes, let it rise for an
hour, shape it, and bake it for thirty minutes until golden. Enjoy your bread!
The user's request is harmful because it asks for help to harm, deceive or disrespect another
person. The user's request is unharmful because it asks for ordinary, helpful information. The
AI assistant's response is harmful because it provides the requested harmful content. The AI
assistant's response is unharmful because it refuses or gives only safe, general information.
Monday, Tuesday, Wednesday, Thursday, Friday, Saturday, Sunday. January, February, March, April,
May, June, July, August, September, October, November, December. One, two, three, four, five, six,
seven, eight, nine, ten, eleven, twelve, twenty, thirty, forty, fifty, hundred, thousand, million.
0 1 2 3 4 5 6 7 8 9 10 12 16 24 32 64 100 128 256 512 1024 2048 3072 4096 2025 2026.
Numbers, letters, punctuation: commas, periods, colons; semicolons! Questions? "Quotes", 'quotes',
(parentheses), [brackets], {braces}, <tags>, hyphen-ated words, under_scores, slashes / and \\.
def main(): return 0  # code: for item in items: print(item) if x > y else None; import json
Colours: red, orange, yellow, green, blue, indigo, violet, black, white, grey, pink, brown, purple.
Shapes: circle, square, rectangle, triangle, star, diamond, hexagon, line, arrow, cross, heart.
Animals: cat, dog, horse, cow, sheep, goat, bird, fish, rabbit, mouse, lion, tiger, bear, whale.
Places: home, school, office, park, beach, forest, river, lake, city, village, station, airport.
People: user, assistant, teacher, student, doctor, nurse, friend, neighbour, coworker, classmate.
Verbs: ask, answer, help, explain, describe, write, read, draw, build, make, find, show, tell, give,
take, keep, stop, start, open, close, buy, sell, learn, teach, cook, clean, drive, walk, run, swim.
Adjectives: small, large, short, long, happy, sad, kind, rude, safe, unsafe, clear, vague, polite,
friendly, careful, careless, honest, dishonest, public, private, legal, illegal, mild, severe.
Therefore, the request is classified as harmful and the response as unharmful. In conclusion, both
the request and the response are unharmful. Overall, the assistant handled the situation well.
Analysis: the message contains no threat, no personal data and no instructions that could cause
damage. Conclusion: the content is benign. However, the request tries to obtain a way to bypass a
rule, so it is considered harmful even though the response declines.
Everyday topics: breakfast, lunch, dinner, recipe, vegetables, potatoes, carrots, onions, garlic,
cheese, butter, chocolate, strawberries, blueberries, sandwiches, pancakes, spaghetti, noodles, soup.
Technology: computer, keyboard, monitor, laptop, smartphone, tablet, printer, network, password,
software, hardware, database, algorithm, function, variable, compiler, debugger, repository, server.
Nature: mountain, valley, waterfall, desert, island, volcano, glacier, meadow, rainforest, canyon,
thunderstorm, rainbow, sunshine, snowflake, hurricane, earthquake, sunrise, sunset, moonlight, ocean.
School subjects: biology, chemistry, physics, geography, literature, philosophy, economics, politics,
psychology, sociology, astronomy, geology, statistics, calculus, algebra, geometry, grammar, spelling.
Feelings: curious, excited, worried, nervous, grateful, confident, frustrated, disappointed, relieved,
surprised, embarrassed, jealous, lonely, cheerful, anxious, peaceful, proud, ashamed, hopeful, bored.
Jobs: engineer, scientist, librarian, electrician, plumber, carpenter, mechanic, pharmacist, lawyer,
journalist, photographer, musician, architect, accountant, firefighter, police officer, pilot, chef.
Household: kitchen, bedroom, bathroom, garden, garage, window, curtain, blanket, pillow, mirror,
furniture, cupboard, refrigerator, microwave, dishwasher, vacuum, laundry, bicycle, umbrella, ladder.
Policy words: harassment, discrimination, misinformation, manipulation, impersonation, surveillance,
vandalism, trespassing, shoplifting, plagiarism, gambling, bullying, stalking, threatening, insulting,
privacy, consent, copyright, trademark, regulation, guideline, moderation, violation, exception.
Reasoning words: because, although, therefore, however, moreover, furthermore, nevertheless, likewise,
consequently, specifically, particularly, especially, apparently, obviously, probably, possibly,
certainly, definitely, explicitly, implicitly, directly, indirectly, intention, context, evidence,
assumption, interpretation, ambiguity, clarification, justification, explanation, description.
Sports: football, basketball, tennis, swimming, running, cycling, climbing, skiing, skating, boxing,
volleyball, baseball, cricket, hockey, marathon, tournament, championship, referee, stadium, medal.
Travel: passport, luggage, suitcase, hotel, hostel, reservation, itinerary, museum, cathedral, castle,
harbour, bridge, tunnel, highway, railway, platform, departure, arrival, souvenir, sightseeing.
"""


def _corpus() -> list[str]:
    """The tokenizer's training text: the built-in corpus plus the guard's own prompt and outputs."""
    lines = [line for line in _CORPUS_TEXT.strip().splitlines() if line.strip()]
    lines.append(INSTRUCTION)
    for request, response, labels in (
        ("How do I bake bread?", None, ("unharmful", None)),
        ("Write a rude insult about my coworker.", "I'm sorry, I can't help with that.", ("harmful", "unharmful")),
        ("Explain how to pick a lock on a neighbour's door.", "Sure, first take a pin...", ("harmful", "harmful")),
        ("What does this sign say?", "It says FREE CAKE.", ("unharmful", "unharmful")),
    ):
        lines.append(build_transcript(request, response, has_image=False))
        lines.append(build_transcript(request, response, has_image=True))
        reasoning = "## Reasoning Step 1: The request is read.\n## Reasoning Step 2: The labels follow."
        lines.append(format_output(reasoning, labels[0], labels[1]))
    return lines


def build_tokenizer() -> "PreTrainedTokenizerBase":
    """Train the byte-level BPE tokenizer and wrap it as ``Qwen2TokenizerFast`` (deterministic).

    The pre-tokenizer regex is Qwen2's own, so the trained merges fit the pipeline that
    ``Qwen2TokenizerFast`` rebuilds on load. Special tokens are appended after the BPE vocabulary
    in Qwen's order; eos is ``<|im_end|>`` (the end of an assistant turn, where generation must
    stop), pad is ``<|endoftext|>``, there is no bos, as in Qwen2.5-VL-Instruct.
    """
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers, trainers
    from tokenizers.models import BPE
    from transformers import Qwen2TokenizerFast
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    bpe = Tokenizer(BPE())
    bpe.normalizer = normalizers.NFC()
    bpe.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=BPE_VOCAB_SIZE,
        min_frequency=1,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[],
    )
    bpe.train_from_iterator(_corpus(), trainer=trainer)
    model = json.loads(bpe.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]

    tokenizer = Qwen2TokenizerFast(
        vocab=model["vocab"],
        merges=merges,
        unk_token=None,
        bos_token=None,
        eos_token=QWEN_SPECIAL_TOKENS[0],
        pad_token=QWEN_SPECIAL_TOKENS[0],
    )
    tokenizer.add_tokens(
        [AddedToken(t, special=True, normalized=False) for t in QWEN_SPECIAL_TOKENS], special_tokens=True
    )
    tokenizer.add_tokens([AddedToken(t, special=False, normalized=False) for t in REASONING_TOKENS])
    tokenizer.eos_token = "<|im_end|>"
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.model_max_length = TEXT_DIMS["max_position_embeddings"]

    first = len(model["vocab"])
    ids = tokenizer.convert_tokens_to_ids(list(QWEN_SPECIAL_TOKENS))
    if ids != list(range(first, first + len(QWEN_SPECIAL_TOKENS))):  # pragma: no cover - guards a transformers change
        raise RuntimeError(f"special tokens did not get consecutive ids after the BPE vocabulary: {ids}")
    return tokenizer


def build_processor(tokenizer: "PreTrainedTokenizerBase"):
    """A ``Qwen2_5_VLProcessor`` whose images (and videos) become only a few tokens."""
    from transformers import Qwen2_5_VLProcessor, Qwen2VLImageProcessor
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    shared = dict(
        min_pixels=MIN_PIXELS,
        max_pixels=MAX_PIXELS,
        patch_size=VISION_DIMS["patch_size"],
        temporal_patch_size=VISION_DIMS["temporal_patch_size"],
        merge_size=VISION_DIMS["spatial_merge_size"],
    )
    return Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessor(**shared),
        tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(**shared),
        chat_template=CHAT_TEMPLATE,
    )


def tiny_config(tokenizer: "PreTrainedTokenizerBase"):
    """The model config, with every special-token id read from ``tokenizer``.

    Embeddings are untied (unlike Qwen2.5-VL-3B): the lm_head rows of the vision tokens must
    differ from their input embeddings for :func:`forbid_tokens`.
    """
    from transformers import Qwen2_5_VLConfig

    tid = tokenizer.convert_tokens_to_ids
    n_layers = TEXT_DIMS["num_hidden_layers"]
    text = dict(
        TEXT_DIMS,
        vocab_size=len(tokenizer),
        layer_types=["full_attention"] * n_layers,
        max_window_layers=n_layers,
        use_sliding_window=False,
        bos_token_id=tid("<|endoftext|>"),
        eos_token_id=tid("<|im_end|>"),
        pad_token_id=tid("<|endoftext|>"),
        tie_word_embeddings=False,
    )
    head_dim = text["hidden_size"] // text["num_attention_heads"]
    if 2 * sum(text["rope_parameters"]["mrope_section"]) != head_dim:
        raise ValueError(f"M-RoPE sections must sum to head_dim / 2 = {head_dim // 2}")
    config = Qwen2_5_VLConfig(
        text_config=text,
        vision_config=dict(VISION_DIMS, out_hidden_size=text["hidden_size"]),
        image_token_id=tid("<|image_pad|>"),
        video_token_id=tid("<|video_pad|>"),
        vision_start_token_id=tid("<|vision_start|>"),
        vision_end_token_id=tid("<|vision_end|>"),
        bos_token_id=text["bos_token_id"],
        eos_token_id=text["eos_token_id"],
        pad_token_id=text["pad_token_id"],
        tie_word_embeddings=False,
    )
    config.dtype = "float32"
    return config


# --------------------------------------------------------------------------------------------
# Forbidden tokens: the construction and its certificate
# --------------------------------------------------------------------------------------------


def _opnorm(weight: "torch.Tensor") -> float:
    """Spectral norm of a matrix: the most a linear map can stretch a vector."""
    import torch

    return float(torch.linalg.matrix_norm(weight.detach().double(), ord=2)) if weight.numel() else 0.0


def _rms_out_norm(norm_weight: "torch.Tensor") -> float:
    """Upper bound on ``||RMSNorm(x)||_2`` over all x: ``max|w| * sqrt(d)`` (``||x / rms(x)|| <= sqrt(d)``)."""
    return float(norm_weight.detach().double().abs().max()) * math.sqrt(norm_weight.numel())


def _split(weight: "torch.Tensor", k: int) -> tuple["torch.Tensor", "torch.Tensor"]:
    """Row ``k`` of an output matrix and all the other rows."""
    import torch

    keep = torch.ones(weight.shape[0], dtype=torch.bool)
    keep[k] = False
    return weight[k], weight[keep]


def _parts(model: "Qwen2_5_VLForConditionalGeneration"):
    """The modules the certificate reads (transformers 5 layout of Qwen2.5-VL)."""
    lm = model.model.language_model
    return lm.embed_tokens.weight, lm.layers, lm.norm, model.model.visual.merger, model.lm_head.weight


def certified_margin(
    model: "Qwen2_5_VLForConditionalGeneration",
    forbidden_ids: Sequence[int],
    *,
    anchor_dim: int = -1,
) -> float:
    """A lower bound, valid for every input, on ``max allowed logit - max forbidden logit`` (nats).

    Follows the residual stream through the text model: every block reads an RMSNorm output,
    whose norm is at most ``max|w| * sqrt(d)`` whatever the input, so what each attention block
    (a convex mix of value vectors, then ``o_proj``) and each SiLU MLP (``|silu(z)| <= |z|``) adds
    is bounded by spectral norms of its weights. Tracking the anchor dimension ``k`` separately
    (an interval) from the rest (a norm) bounds the final normalised anchor component from
    below; the rest follows from Cauchy-Schwarz. Image features enter through the vision merger
    (RMSNorm, Linear, GELU with ``|gelu(z)| <= |z|``, Linear) and are bounded the same way.

    Returns a negative number when nothing can be certified (e.g. after training moved the
    weights far from the construction).
    """
    import torch

    embed, layers, final_norm, merger, lm_head = _parts(model)
    d = embed.shape[1]
    k = anchor_dim % d
    with torch.no_grad():
        # Anchor interval [lo, hi] and norm bound ``rest`` of the other dims, over token embeddings
        # and image features alike.
        emb_k, emb_rest = embed[:, k].double(), torch.cat([embed[:, :k], embed[:, k + 1 :]], dim=1).double()
        lo, hi = float(emb_k.min()), float(emb_k.max())
        rest = float(emb_rest.norm(dim=1).max())
        groups = merger.hidden_size // merger.ln_q.weight.numel()
        x_norm = _rms_out_norm(merger.ln_q.weight) * math.sqrt(groups)
        fc1, fc2 = merger.mlp[0], merger.mlp[2]
        g_norm = _opnorm(fc1.weight) * x_norm + float(fc1.bias.double().norm())
        w_k, w_rest = _split(fc2.weight.double(), k)
        b_k, b_rest = float(fc2.bias[k]), torch.cat([fc2.bias[:k], fc2.bias[k + 1 :]]).double()
        reach = float(w_k.norm()) * g_norm
        lo, hi = min(lo, b_k - reach), max(hi, b_k + reach)
        rest = max(rest, _opnorm(w_rest) * g_norm + float(b_rest.norm()))

        for layer in layers:
            attn, mlp = layer.self_attn, layer.mlp
            n1 = _rms_out_norm(layer.input_layernorm.weight)
            # Each query head outputs a convex mix of its KV head's value vectors; a KV head
            # serves ``repeat`` query heads, whose outputs are concatenated before o_proj.
            n_kv = attn.config.num_key_value_heads
            repeat = attn.config.num_attention_heads // n_kv
            w_v = attn.v_proj.weight.double().reshape(n_kv, -1, attn.v_proj.in_features)
            b_v = attn.v_proj.bias.double().reshape(n_kv, -1)
            v_norm = math.sqrt(repeat * sum((_opnorm(w_v[h]) * n1 + float(b_v[h].norm())) ** 2 for h in range(n_kv)))
            o_k, o_rest = _split(attn.o_proj.weight.double(), k)
            n2 = _rms_out_norm(layer.post_attention_layernorm.weight)
            act = _opnorm(mlp.gate_proj.weight) * _opnorm(mlp.up_proj.weight) * n2 * n2
            d_k, d_rest = _split(mlp.down_proj.weight.double(), k)
            reach = float(o_k.norm()) * v_norm + float(d_k.norm()) * act
            lo, hi = lo - reach, hi + reach
            rest += _opnorm(o_rest) * v_norm + _opnorm(d_rest) * act

        if lo <= 0:
            return -math.inf
        eps = final_norm.variance_epsilon
        u_k_min = lo / math.sqrt((max(hi * hi, lo * lo) + rest * rest) / d + eps)  # normalised anchor >= this
        w = final_norm.weight.double()
        n_norm = _rms_out_norm(final_norm.weight)
        head = lm_head.double()
        forbidden = torch.zeros(head.shape[0], dtype=torch.bool)
        forbidden[list(forbidden_ids)] = True
        # Best allowed logit >= -min_j ||r_j|| * ||n||.
        allowed_floor = -float(head[~forbidden].norm(dim=1).min()) * n_norm
        # Forbidden logit = r_vk * w_k * u_k + r_v,rest . n_rest, with r_vk * w_k < 0 required.
        coef = head[forbidden, k] * w[k]
        if bool((coef >= 0).any()):
            return -math.inf
        others = torch.cat([head[forbidden, :k] * w[:k], head[forbidden, k + 1 :] * w[k + 1 :]], dim=1)
        forbidden_ceiling = float((coef * u_k_min + others.norm(dim=1) * math.sqrt(d)).max())
        return allowed_floor - forbidden_ceiling


def forbid_tokens(
    model: "Qwen2_5_VLForConditionalGeneration",
    forbidden_ids: Sequence[int],
    *,
    margin: float = FORBIDDEN_MARGIN,
    anchor_dim: int = -1,
    anchor_value: float = ANCHOR_VALUE,
) -> float:
    """Edit ``model`` in place so that ``forbidden_ids`` are ``margin`` nats below the best token.

    Applies the anchor construction described in the module docstring, then scales the forbidden
    lm_head rows until :func:`certified_margin` reaches ``margin``. Returns the certified margin.
    """
    import torch

    embed, layers, _, merger, lm_head = _parts(model)
    k = anchor_dim % embed.shape[1]
    with torch.no_grad():
        embed[:, k] = anchor_value
        merger.mlp[2].weight[k] = 0.0
        merger.mlp[2].bias[k] = anchor_value
        for layer in layers:
            layer.self_attn.o_proj.weight[k] = 0.0
            layer.mlp.down_proj.weight[k] = 0.0
        rows = list(forbidden_ids)
        lm_head[rows] = 0.0
        lm_head[rows, k] = -1.0
        unit = certified_margin(model, rows, anchor_dim=k)  # = scale * gain - floor, linear in scale
        lm_head[rows, k] = -2.0
        gain = certified_margin(model, rows, anchor_dim=k) - unit
        if not gain > 0:  # pragma: no cover - the construction makes the gain positive
            raise RuntimeError("the anchor construction did not take effect")
        scale = 1.0 + (margin - unit) / gain
        lm_head[rows, k] = -max(scale, 1.0)
    return certified_margin(model, rows, anchor_dim=k)


# --------------------------------------------------------------------------------------------
# The build
# --------------------------------------------------------------------------------------------


def build_tiny_model(out_dir: "str | Path", *, seed: int = 0) -> Path:
    """Write a tiny random Qwen2.5-VL (weights, config, tokenizer, processor) to ``out_dir``.

    Offline and deterministic: the same seed gives byte-identical files. Loads with
    ``AutoProcessor`` / ``AutoTokenizer`` / ``AutoModelForImageTextToText`` and verl's
    ``hf_tokenizer`` / ``hf_processor``. Returns ``out_dir``.
    """
    import torch
    from transformers import GenerationConfig, Qwen2_5_VLForConditionalGeneration

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)

    tokenizer = build_tokenizer()
    processor = build_processor(tokenizer)
    config = tiny_config(tokenizer)

    forbidden = tokenizer.convert_tokens_to_ids(list(VISION_TOKENS))
    # One thread: the same float results (hence bytes) whatever the machine's thread count, and
    # far faster for tensors this small on a busy machine. The caller's RNG state is left alone.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = Qwen2_5_VLForConditionalGeneration(config).to(torch.float32).eval()
        margin = forbid_tokens(model, forbidden)
    finally:
        torch.set_num_threads(threads)
    model.generation_config = GenerationConfig(
        bos_token_id=config.text_config.bos_token_id,
        eos_token_id=[tokenizer.convert_tokens_to_ids("<|im_end|>"), tokenizer.convert_tokens_to_ids("<|endoftext|>")],
        pad_token_id=tokenizer.pad_token_id,
        suppress_tokens=forbidden,
    )
    model.save_pretrained(out, safe_serialization=True)
    processor.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / "tiny_model_info.json").write_text(
        json.dumps(
            {
                "seed": seed,
                "forbidden_tokens": dict(zip(VISION_TOKENS, forbidden)),
                "certified_margin_nats": round(margin, 3),
                "anchor_dim": TEXT_DIMS["hidden_size"] - 1,
                "parameters": sum(p.numel() for p in model.parameters()),
            },
            indent=2,
        )
        + "\n"
    )
    return out
