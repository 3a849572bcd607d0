"""Measuring a guard (the layer above inference): the paper's 14 benchmark/task pairs, F1 with
harmful as positive, sample-weighted averages with bootstrap CIs, reports beside the paper's numbers,
and hard-sample mining (the same generate-then-score loop, k samples per row).

- :mod:`.benchmarks`: the registry and the loader (via ``data_prep.readers``);
- :mod:`.metrics`: pure sklearn-style metrics;
- :mod:`.scoring`: guard outputs -> per-benchmark scores and averages;
- :mod:`.generations` / :mod:`.harness`: resumable generation to a JSONL;
- :mod:`.report`: JSON, CSV, markdown and PNG writers; :mod:`.reference`: the paper's numbers;
- :mod:`.mining`: rejection sampling of hard rows for RL.

The commands (``evaluate``, ``score``, ``mine``) live in :mod:`cli`.
"""
