"""The one OpenAI-compatible request builder: the token limit and the sampling fields per kind of server,
and the one image data URL (what synthesis and the openai backend both send)."""

from __future__ import annotations

import base64
import io
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from data_prep.chat_request import image_data_url, request_options, resolve_server_kind, server_kind_hint
from data_prep.errors import RowError


@pytest.mark.parametrize("url, kind", [
    ("https://api.openai.com/v1", "openai"),
    ("https://API.OpenAI.com/v1/", "openai"),
    ("https://my-team.openai.azure.com/openai/deployments/gpt-4o", "openai"),
    ("http://127.0.0.1:8000/v1", "vllm"),
    ("https://gateway.example.com/api.openai.com/v1", "vllm"),  # the host decides, not the path
    (None, "vllm"),
])  # fmt: skip
def test_auto_picks_the_official_form_only_for_the_official_hosts(url, kind):
    assert resolve_server_kind("auto", url) == kind
    assert resolve_server_kind("transformers", url) == "transformers"  # a named kind is kept
    with pytest.raises(ValueError, match="server kind must be one of auto, openai, vllm, transformers"):
        resolve_server_kind("tgi", url)


@given(max_tokens=st.integers(1, 1 << 20), temperature=st.floats(0, 2), top_p=st.floats(0.01, 1),
       n=st.integers(1, 16), seed=st.none() | st.integers(0, 1 << 31))  # fmt: skip
def test_the_limit_and_sampling_go_where_each_server_reads_them(max_tokens, temperature, top_p, n, seed):
    official = request_options("openai", max_tokens=max_tokens, temperature=temperature, top_p=top_p, n=n, seed=seed)
    # the official API: max_completion_tokens (its reasoning models refuse max_tokens), standard fields only
    assert official == {"max_completion_tokens": max_tokens, "temperature": temperature, "top_p": top_p, "n": n,
                        **({} if seed is None else {"seed": seed})}  # fmt: skip

    vllm = request_options("vllm", max_tokens=max_tokens, temperature=temperature, top_p=top_p, n=n, seed=seed)
    # vLLM / SGLang: both limits; every field a checkpoint's generation_config.json could fill, neutral
    assert vllm["max_tokens"] == vllm["max_completion_tokens"] == max_tokens
    assert (vllm["top_k"], vllm["min_p"], vllm["repetition_penalty"]) == (-1, 0.0, 1.0)
    assert (vllm["temperature"], vllm["top_p"], vllm["n"], vllm.get("seed")) == (temperature, top_p, n, seed)

    served = request_options("transformers", max_tokens=max_tokens, temperature=temperature, top_p=top_p, n=n, seed=seed)
    # transformers serve: max_tokens (it ignores max_completion_tokens), refuses top_k & co. (422),
    # takes them in its generation_config extension instead
    assert served["max_tokens"] == max_tokens and "max_completion_tokens" not in served
    assert not {"top_k", "min_p", "repetition_penalty"} & set(served)
    config = json.loads(served["generation_config"])
    assert config["max_new_tokens"] == max_tokens and config["repetition_penalty"] == 1.0
    if temperature == 0:
        assert config["do_sample"] is False
    else:  # it samples only when told to, whatever the temperature
        assert config == {"do_sample": True, "max_new_tokens": max_tokens, "repetition_penalty": 1.0,
                          "temperature": temperature, "top_p": top_p, "top_k": 0, "min_p": 0.0}  # fmt: skip


def test_auto_must_be_resolved_first_and_refusals_get_a_hint():
    with pytest.raises(ValueError, match="resolve 'auto' first"):
        request_options("auto", max_tokens=1, temperature=0)
    refusal = "Unexpected fields in the request: {'top_k', 'repetition_penalty', 'min_p'}"
    assert "--server-kind transformers" in server_kind_hint(refusal)
    assert server_kind_hint("Unrecognized request argument supplied: top_k").startswith(" (the server refused")
    assert server_kind_hint("This model's maximum context length is 8192 tokens") == ""


def _decode(url: str) -> tuple[str, bytes]:
    head, data = url.split(",", 1)
    return head, base64.b64decode(data)


def test_image_data_url_sends_the_image_as_the_guard_sees_it(tmp_path):
    png = io.BytesIO()
    Image.new("RGB", (12, 8), (10, 200, 30)).save(png, format="PNG")
    head, data = _decode(image_data_url(png.getvalue(), row_id="r"))
    assert head == "data:image/png;base64" and data == png.getvalue()  # ready PNG bytes travel unchanged

    jpeg = tmp_path / "photo.jpg"
    Image.new("RGB", (64, 32), (200, 10, 10)).save(jpeg, format="JPEG")
    head, data = _decode(image_data_url(str(jpeg), row_id="r"))
    assert head == "data:image/jpeg;base64" and data == jpeg.read_bytes()
    head, data = _decode(image_data_url(str(jpeg), row_id="r", max_side=16))  # shrunk first
    assert Image.open(io.BytesIO(data)).size == (16, 8)

    rgba = Image.new("RGBA", (4, 4), (0, 0, 0, 0))  # transparent: composited on white, never black
    head, data = _decode(image_data_url(rgba, row_id="r"))
    assert head == "data:image/png;base64" and Image.open(io.BytesIO(data)).getpixel((0, 0)) == (255, 255, 255)

    with pytest.raises(RowError, match=r"row 'row-7', field 'images\[1\]'.*not found"):
        image_data_url(str(tmp_path / "missing.png"), row_id="row-7", field="images[1]")
