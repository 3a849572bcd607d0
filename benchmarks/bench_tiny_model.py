"""The tiny model: build time, size, and how often raw-logit sampling emits a vision token.

Samples at temperature 1.2 with no top-k/top-p and no ``suppress_tokens`` from (a) the built tiny
model and (b) the same config and seed without the vision-token construction, and counts vision
tokens. Prints the figures and writes them as JSON.

    .venv/bin/python benchmarks/bench_tiny_model.py --tokens 4096 --out outputs/bench_tiny_model.json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _sample(model, input_ids, *, tokens: int, batch: int, temperature: float, seed: int, pad_id: int):
    import torch
    from transformers import GenerationConfig

    model.generation_config = GenerationConfig(pad_token_id=pad_id)  # no saved suppress_tokens
    config = GenerationConfig(
        do_sample=True, temperature=temperature, top_k=0, top_p=1.0,
        max_new_tokens=max(1, tokens // batch), eos_token_id=None, pad_token_id=pad_id,
    )
    torch.manual_seed(seed)
    out = model.generate(input_ids=input_ids.repeat(batch, 1), generation_config=config)
    return out[:, input_ids.shape[1] :]


def _finite(value: float):
    """JSON has no infinities: an uncertifiable margin is written as null."""
    return value if value != float("-inf") else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=4096, help="tokens sampled per model (default: 4096)")
    parser.add_argument("--batch", type=int, default=32, help="sequences sampled in parallel (default: 32)")
    parser.add_argument(
        "--temperature", type=float, default=1.2, help="sampling temperature (default: 1.2, the paper's)"
    )
    parser.add_argument("--seed", type=int, default=0, help="model and sampling seed (default: 0)")
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    args = parser.parse_args()

    import torch
    import transformers
    from transformers import AutoModelForImageTextToText, AutoTokenizer, Qwen2_5_VLForConditionalGeneration

    from data_prep.prompt import build_messages
    from demo import tiny_model as tm

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        folder = tm.build_tiny_model(Path(tmp) / "tiny", seed=args.seed)
        build_s = time.perf_counter() - start
        weights_bytes = (folder / "model.safetensors").stat().st_size
        tokenizer = AutoTokenizer.from_pretrained(folder)
        model = AutoModelForImageTextToText.from_pretrained(folder).eval()
    forbidden = tokenizer.convert_tokens_to_ids(list(tm.VISION_TOKENS))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(args.seed)
        control = Qwen2_5_VLForConditionalGeneration(model.config).eval()

    prompt = tokenizer.apply_chat_template(
        build_messages("Write a rude insult about my coworker.", None, has_image=False),
        add_generation_prompt=True, return_tensors="pt", return_dict=True,
    )["input_ids"]
    results = {}
    for name, net in (("tiny_model", model), ("control_without_construction", control)):
        start = time.perf_counter()
        new = _sample(net, prompt, tokens=args.tokens, batch=args.batch, temperature=args.temperature,
                      seed=args.seed, pad_id=tokenizer.pad_token_id)
        results[name] = {
            "sampled_tokens": new.numel(),
            "vision_tokens": int(torch.isin(new, torch.tensor(forbidden)).sum()),
            "certified_margin_nats": _finite(tm.certified_margin(net, forbidden)),
            "sample_s": round(time.perf_counter() - start, 3),
        }
    report = {
        "build_s_excluding_imports": round(build_s, 3),
        "weights_bytes": weights_bytes,
        "parameters": sum(p.numel() for p in model.parameters()),
        "vocab": len(tokenizer),
        "temperature": args.temperature,
        "seed": args.seed,
        "results": results,
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "python": platform.python_version(),
        },
        "device": f"cpu ({platform.processor() or platform.machine()}), 1 torch thread",
    }
    print(f"build {report['build_s_excluding_imports']} s (imports excluded), weights {weights_bytes / 1e6:.2f} MB, "
          f"{report['parameters']:,} parameters, vocab {report['vocab']}")
    for name, r in results.items():
        margin = r["certified_margin_nats"]
        print(f"{name:30s} {r['vision_tokens']:5d} vision tokens in {r['sampled_tokens']} sampled "
              f"(T={args.temperature}); certified margin {'none' if margin is None else f'{margin:.1f} nats'}; "
              f"{r['sample_s']} s")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
