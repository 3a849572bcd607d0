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


@pytest.mark.e2e
def test_plugin_installs_the_fix_lazily_in_a_fresh_verl_process():
    code = (
        "import sys, verl\n"
        "assert 'verl.models.transformers.qwen2_vl' not in sys.modules, 'fix must not import the module eagerly'\n"
        "import verl.models.transformers.qwen2_vl as m\n"
        "print(getattr(m._get_input_embeds, '_guardreasoner_fixed', False))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "True"


@pytest.mark.e2e
def test_fix_can_be_switched_off():
    code = (
        "import verl, verl.models.transformers.qwen2_vl as m\n"
        "print(getattr(m._get_input_embeds, '_guardreasoner_fixed', False))\n"
    )
    env = {**__import__("os").environ, "GUARDREASONER_VERL_FIXES": "0"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_versions_the_fixes_were_not_written_for_leave_verl_untouched(monkeypatch, caplog):
    """Another verl or transformers: a warning naming the versions, and no patch at all."""
    from recipe.guardreasoner_vl import verl_fixes

    assert verl_fixes.version_mismatches() == []  # the pinned install is what the fixes were written for
    assert verl_fixes.version_mismatches({"verl": "==0.10.0", "transformers": ">=5.5.3,<5.11"}) == [
        f"verl {__import__('importlib.metadata').metadata.version('verl')} (fixes written for ==0.10.0)"
    ]
    monkeypatch.setattr(verl_fixes, "WRITTEN_FOR", {"verl": "==0.10.0"})
    installed = []
    monkeypatch.setattr(verl_fixes, "when_imported", lambda name, fix: installed.append(name))
    with caplog.at_level("WARNING", logger=verl_fixes.__name__):
        assert verl_fixes.apply() is False
    assert installed == [] and "fixes written for ==0.10.0" in caplog.text and "=force" in caplog.text
    monkeypatch.setenv(verl_fixes.ENV_SWITCH, "force")
    assert verl_fixes.apply() is True and installed == [verl_fixes._QWEN2_VL_MODULE]


def test_fix_refuses_a_function_with_another_signature(caplog):
    """A verl whose _get_input_embeds changed shape is not patched blindly."""
    import types

    from recipe.guardreasoner_vl.verl_fixes import fix_qwen2_vl_text_only_embeds

    def _get_input_embeds(model, input_ids, attention_mask=None, pixel_values=None):  # another verl's shape
        return "original"

    module = types.SimpleNamespace(__name__="verl.models.transformers.qwen2_vl", _get_input_embeds=_get_input_embeds)
    with caplog.at_level("WARNING"):
        fix_qwen2_vl_text_only_embeds(module)
    assert module._get_input_embeds is _get_input_embeds and "fix not applied" in caplog.text
