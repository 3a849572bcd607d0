"""The demo kit: everything that lets the recipe run, be tested and be shown without a model hub.

- :mod:`demo.tiny_model`: a tiny random Qwen2.5-VL (tokenizer, processor, weights) built offline;
- :mod:`demo.sample`: the bundled GuardReasoner-VLTrain look-alike (``sample_data/vltrain``);
- :mod:`demo.mini_benchmarks`: the bundled mini benchmarks (``sample_data/benchmarks``);
- :mod:`demo.run`: ``guardreasoner-vl demo``, the whole recipe on a CPU.

It sits above the verl integration (the demo launches the recipe's entry points) and below the CLI.
"""
