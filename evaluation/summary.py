"""The closing summary the commands print: one line per benchmark, then the averages."""

from __future__ import annotations

from evaluation.scoring import EvalResults


def summary_lines(results: EvalResults) -> list[str]:
    lines = [f"{'task':<9}{'benchmark':<24}{'n':>6}{'F1':>8}  {'95% CI':<17}{'parse fail':>11}{'tokens':>9}"]
    for s in results.scores:
        tokens = "-" if s.mean_output_tokens is None else f"{s.mean_output_tokens:.1f}"
        ci = f"[{100 * s.f1_ci[0]:.2f}, {100 * s.f1_ci[1]:.2f}]"
        lines.append(f"{s.task:<9}{s.benchmark:<24}{s.n:>6}{100 * s.f1:>8.2f}  {ci:<17}{s.parse_failures:>11}{tokens:>9}")
    for a in results.averages:
        ci = f"[{100 * a.f1_ci[0]:.2f}, {100 * a.f1_ci[1]:.2f}]"
        label = f"Average ({a.name.title()})" + ("" if a.complete else "*")
        lines.append(f"{a.task:<9}{label:<24}{a.n:>6}{100 * a.f1:>8.2f}  {ci}")
    if any(not a.complete for a in results.averages):
        lines.append("* partial: fewer benchmarks than the paper's average")
    truncated, refused, total = (sum(getattr(s, key) for s in results.scores) for key in ("truncated", "refused", "n"))
    if truncated:
        lines.append(f"{truncated} of {total} outputs were cut at the token limit (finish_reason length; among the "
                     "parse failures: raise --max-new-tokens if that is many)")  # fmt: skip
    if refused:
        lines.append(f"{refused} prompts were refused as too long for the model's context (scored as wrong)")
    return lines


def print_summary(results: EvalResults, paths: dict) -> None:
    print("\n".join(summary_lines(results)))
    for kind, path in paths.items():
        for p in path if isinstance(path, list) else [path]:
            print(f"wrote {kind}: {p}")
