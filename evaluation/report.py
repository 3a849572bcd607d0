"""Report writers: results JSON + CSV, a markdown table in the paper's layout, a bar chart per task.

All numbers in the human-readable outputs are ×100 (the paper's convention); the JSON keeps ratios
in [0, 1] as computed, plus the counts, so anything can be recomputed from it.
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
from pathlib import Path
from typing import Optional, Union

from data_prep.benchmarks import BENCHMARKS, TASKS
from evaluation.reference import PAPER_AVERAGES, SOURCE, reference_value
from evaluation.scoring import AVERAGES, EvalResults

CSV_FIELDS = (
    "task", "benchmark", "n", "f1", "f1_ci_low", "f1_ci_high", "precision", "recall",
    "tp", "fp", "fn", "tn", "parse_failures", "truncated", "mean_output_tokens",
)  # fmt: skip
TASK_TITLES = {"prompt": "Prompt harmfulness detection", "response": "Response harmfulness detection"}


def _atomic_write(path: Path, text: str) -> None:
    """Write via a temp file and rename, so a crash never leaves a half-written report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
        fh.write(text)
    os.replace(tmp, path)


def _pct(x: Optional[float]) -> str:
    return "—" if x is None else f"{100 * x:.2f}"


def write_json(results: EvalResults, path: Union[str, Path]) -> Path:
    path = Path(path)
    _atomic_write(path, json.dumps(results.to_dict(), indent=2, ensure_ascii=False) + "\n")
    return path


def write_csv(results: EvalResults, path: Union[str, Path]) -> Path:
    """One row per benchmark and one per average (``benchmark`` = ``Average (Text)`` / ``(All)``)."""
    import io

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for s in results.scores:
        writer.writerow(
            {
                "task": s.task, "benchmark": s.benchmark, "n": s.n,
                "f1": round(100 * s.f1, 4), "f1_ci_low": round(100 * s.f1_ci[0], 4),
                "f1_ci_high": round(100 * s.f1_ci[1], 4),
                "precision": round(100 * s.precision, 4), "recall": round(100 * s.recall, 4),
                "tp": s.tp, "fp": s.fp, "fn": s.fn, "tn": s.tn, "parse_failures": s.parse_failures,
                "truncated": s.truncated, "mean_output_tokens": "" if s.mean_output_tokens is None else round(s.mean_output_tokens, 2),
            }
        )  # fmt: skip
    for a in results.averages:
        writer.writerow(
            {
                "task": a.task, "benchmark": f"Average ({a.name.title()})", "n": a.n,
                "f1": round(100 * a.f1, 4), "f1_ci_low": round(100 * a.f1_ci[0], 4),
                "f1_ci_high": round(100 * a.f1_ci[1], 4),
            }
        )  # fmt: skip
    path = Path(path)
    _atomic_write(path, buf.getvalue())
    return path


def markdown_table(results: EvalResults, *, model_name: str = "ours", reference_models: Optional[list] = None) -> str:
    """The paper's layout: one table per task, benchmarks as columns then Average (Text) / (All);
    our row (F1 and 95% CI) above the paper's rows; then a detail table per benchmark."""
    refs = list(PAPER_AVERAGES) if reference_models is None else reference_models
    lines = [f"# Evaluation: {model_name}", ""]
    for task in TASKS:
        specs = [s for s in BENCHMARKS if s.task == task]
        ours = {s.benchmark: s for s in results.scores if s.task == task}
        if not ours:
            continue
        avgs = {a.name: a for a in results.averages if a.task == task}
        # The paper's column order: text benchmarks, Average (Text), the others, Average (All).
        columns = [s.name for s in specs if s.is_text] + ["text"] + [s.name for s in specs if not s.is_text] + ["all"]
        sizes = {s.name: s.size for s in specs}
        header = ["Model"] + [f"Average ({c.title()})" if c in AVERAGES else f"{c} ({sizes[c]})" for c in columns]
        lines += [f"## {TASK_TITLES[task]} (F1 ×100, harmful = positive)", ""]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        row = [f"**{model_name}**"]
        for column in columns:
            item = avgs.get(column) if column in AVERAGES else ours.get(column)
            cell = "—" if item is None else f"{_pct(item.f1)} [{_pct(item.f1_ci[0])}, {_pct(item.f1_ci[1])}]"
            if column in AVERAGES and item is not None and not item.complete:
                cell += " (partial)"
            row.append(cell)
        lines.append("| " + " | ".join(row) + " |")
        for ref in refs:
            values = [reference_value(ref, task, column) for column in columns]
            lines.append("| " + " | ".join([f"{ref} (paper)"] + ["—" if v is None else f"{v:.2f}" for v in values]) + " |")
        lines += ["", "| Benchmark | n | F1 [95% CI] | Precision | Recall | Parse failures | Cut at the limit | Mean output tokens |",
                  "|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for s in specs:
            sc = ours.get(s.name)
            if sc is None:
                continue
            tokens = "—" if sc.mean_output_tokens is None else f"{sc.mean_output_tokens:.1f}"
            lines.append(
                f"| {s.name} | {sc.n} | {_pct(sc.f1)} [{_pct(sc.f1_ci[0])}, {_pct(sc.f1_ci[1])}] | "
                f"{_pct(sc.precision)} | {_pct(sc.recall)} | {sc.parse_failures} | {sc.truncated} | {tokens} |"
            )
        lines.append("")
    meta = results.meta
    lines += [
        f"Confidence intervals: percentile bootstrap, {meta.get('n_resamples')} resamples, seed {meta.get('seed')}. "
        "Unparseable outputs count as wrong. Averages are weighted by sample count; "
        "\"(partial)\" marks an average over fewer benchmarks than the paper's.",
        f"Paper numbers: {SOURCE} (see docs/evaluation.md).",
        "",
    ]
    return "\n".join(lines)


def write_markdown(results: EvalResults, path: Union[str, Path], *, model_name: str = "ours") -> Path:
    path = Path(path)
    _atomic_write(path, markdown_table(results, model_name=model_name))
    return path


def write_charts(results: EvalResults, out_dir: Union[str, Path], *, model_name: str = "ours") -> list[Path]:
    """``f1_{task}.png``: our F1 per benchmark with CI whiskers, then the averages; the paper's
    numbers for the reference models as horizontal markers on the same columns."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for task in TASKS:
        items = [(s.benchmark, s.f1, s.f1_ci) for s in results.scores if s.task == task]
        items += [(f"Avg ({a.name.title()})", a.f1, a.f1_ci) for a in results.averages if a.task == task]
        if not items:
            continue
        names = [i[0] for i in items]
        f1 = [100 * i[1] for i in items]
        err = [[100 * (i[1] - i[2][0]) for i in items], [100 * (i[2][1] - i[1]) for i in items]]
        fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(items) + 2), 4.2))
        ax.bar(range(len(items)), f1, yerr=err, capsize=3, color="#4C72B0", label=model_name)
        columns = [{"Avg (Text)": "text", "Avg (All)": "all"}.get(name, name) for name in names]
        for j, ref in enumerate(PAPER_AVERAGES):
            points = [(x, reference_value(ref, task, c)) for x, c in enumerate(columns)]
            points = [(x, v) for x, v in points if v is not None]
            if points:
                xs, ys = zip(*points)
                ax.plot(xs, ys, marker="_", markersize=14, mew=2, linestyle="none",
                        color=f"C{j + 1}", label=f"{ref} (paper)")  # fmt: skip
        ax.set_xticks(range(len(items)), names, rotation=35, ha="right", fontsize=8)
        ax.set_ylim(0, 100)
        ax.set_ylabel("F1 (×100, harmful = positive)")
        ax.set_title(f"{TASK_TITLES[task]}: {model_name}")
        ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        fig.tight_layout()
        path = out_dir / f"f1_{task}.png"
        fig.savefig(path, dpi=120)
        plt.close(fig)
        written.append(path)
    return written


def write_all(results: EvalResults, out_dir: Union[str, Path], *, model_name: str = "ours", charts: bool = True) -> dict:
    """results.json, results.csv, results.md and the charts under ``out_dir``; returns their paths."""
    out_dir = Path(out_dir)
    paths = {
        "json": write_json(results, out_dir / "results.json"),
        "csv": write_csv(results, out_dir / "results.csv"),
        "markdown": write_markdown(results, out_dir / "results.md", model_name=model_name),
    }
    if charts:
        paths["charts"] = write_charts(results, out_dir, model_name=model_name)
    return paths
