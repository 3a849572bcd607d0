"""verl 0.9.1 bug fixes (recipe/guardreasoner_vl/verl_fixes.py) against verl's real code."""

from __future__ import annotations

import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")


def _tiny(tiny_model_dir):
    from transformers import AutoModelForImageTextToText

    torch.manual_seed(0)
    return AutoModelForImageTextToText.from_pretrained(tiny_model_dir, torch_dtype=torch.float32)


def test_unfixed_verl_crashes_on_a_text_only_micro_batch(tiny_model_dir):
    """The bug is real under the pinned transformers: verl's own function fails without the fix."""
    import verl.models.transformers.qwen2_vl as qwen2_vl

    original = getattr(qwen2_vl._get_input_embeds, "__wrapped__", qwen2_vl._get_input_embeds)
    model = _tiny(tiny_model_dir)
    input_ids = torch.tensor([[5, 6, 7, 8]])
    with pytest.raises(AttributeError, match="mean"):
        original(model.model, input_ids)


def test_fixed_text_only_embeds_equal_plain_embeddings_and_reach_the_vision_tower(tiny_model_dir):
    import verl.models.transformers.qwen2_vl as qwen2_vl

    from recipe.guardreasoner_vl.verl_fixes import fix_qwen2_vl_text_only_embeds

    fix_qwen2_vl_text_only_embeds(qwen2_vl)
    fix_qwen2_vl_text_only_embeds(qwen2_vl)  # idempotent
    assert not hasattr(qwen2_vl._get_input_embeds.__wrapped__, "__wrapped__")
    model = _tiny(tiny_model_dir)
    input_ids = torch.tensor([[5, 6, 7, 8], [9, 10, 11, 12]])
    mask = torch.ones_like(input_ids)
    embeds, out_mask = qwen2_vl._get_input_embeds(model.model, input_ids, mask)
    torch.testing.assert_close(embeds, model.get_input_embeddings()(input_ids))
    assert out_mask is mask or torch.equal(out_mask, mask)
    embeds.sum().backward()
    # The dummy pass keeps the vision tower in the graph (FSDP needs every rank's params to take part).
    assert all(p.grad is not None for p in model.model.visual.parameters() if p.requires_grad)


def test_plugin_installs_the_fix_lazily_in_a_fresh_verl_process():
    code = (
        "import sys, verl\n"
        "assert 'verl.models.transformers.qwen2_vl' not in sys.modules, 'fix must not import the module eagerly'\n"
        "import verl.models.transformers.qwen2_vl as m\n"
        "print(getattr(m._get_input_embeds, '_guardreasoner_fixed', False))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "True"


def test_fix_can_be_switched_off():
    code = (
        "import verl, verl.models.transformers.qwen2_vl as m\n"
        "print(getattr(m._get_input_embeds, '_guardreasoner_fixed', False))\n"
    )
    env = {**__import__("os").environ, "GUARDREASONER_VERL_FIXES": "0"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "False"
