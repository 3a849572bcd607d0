"""Estimated API cost from token counts and a price table the user can override.

Prices are USD per 1M tokens, ``{"model": {"input": float, "output": float}}``. A model name is
matched exactly first, then by the longest table key it starts with (``gpt-4o-2024-08-06`` →
``gpt-4o``; ``gpt-4o-mini-…`` → ``gpt-4o-mini``), so dated snapshots need no entry of their own.
The built-in table is a convenience, not a quote: list prices change, so ``--price-table`` or
``--price-input``/``--price-output`` take precedence and the summary says which price it used.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional

#: OpenAI list prices (USD per 1M tokens, standard tier) at the time of writing.
DEFAULT_PRICES: dict[str, dict[str, float]] = {
    "gpt-4o": {"input": 2.50, "output": 10.00},
    "gpt-4o-2024-05-13": {"input": 5.00, "output": 15.00},
    "gpt-4o-mini": {"input": 0.15, "output": 0.60},
    "gpt-4.1": {"input": 2.00, "output": 8.00},
    "gpt-4.1-mini": {"input": 0.40, "output": 1.60},
    "gpt-4.1-nano": {"input": 0.10, "output": 0.40},
}


@dataclass(frozen=True)
class Price:
    """USD per 1M input (prompt) and output (completion) tokens."""

    input: float
    output: float
    #: where the price came from, shown in the summary
    origin: str = ""

    def __post_init__(self) -> None:
        if self.input < 0 or self.output < 0:
            raise ValueError(f"prices must be >= 0, got input {self.input}, output {self.output}")

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.input + completion_tokens * self.output) / 1e6


def load_price_table(path: Optional[Path] = None) -> dict[str, dict[str, float]]:
    """The built-in table, updated with the entries of the JSON file at ``path``."""
    table = {name: dict(prices) for name, prices in DEFAULT_PRICES.items()}
    if path is None:
        return table
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"price table not found: {path}")
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as err:
        raise ValueError(f"price table {path}: not valid JSON ({err})") from None
    if not isinstance(loaded, dict):
        raise ValueError(f"price table {path}: expected an object {{model: {{input, output}}}}")
    for name, prices in loaded.items():
        if not isinstance(prices, dict) or not {"input", "output"} <= set(prices):
            raise ValueError(f"price table {path}: entry {name!r} needs 'input' and 'output' (USD per 1M tokens)")
        try:
            table[name] = {"input": float(prices["input"]), "output": float(prices["output"])}
        except (TypeError, ValueError):
            raise ValueError(f"price table {path}: entry {name!r} has a non-numeric price") from None
    return table


def find_price(model: str, table: Mapping[str, Mapping[str, float]]) -> Optional[Price]:
    """The price of ``model`` (exact name, else the longest matching prefix), or None."""
    if model in table:
        key = model
    else:
        matches = [name for name in table if model.startswith(name)]
        if not matches:
            return None
        key = max(matches, key=len)
    return Price(float(table[key]["input"]), float(table[key]["output"]), origin=f"price table entry {key!r}")


def resolve_price(
    model: str,
    *,
    table_path: Optional[Path] = None,
    input_price: Optional[float] = None,
    output_price: Optional[float] = None,
) -> Optional[Price]:
    """The price to report: per-1M overrides first, then the (overridable) table; None if unknown."""
    if (input_price is None) != (output_price is None):
        raise ValueError("give both --price-input and --price-output, or neither")
    if input_price is not None and output_price is not None:
        return Price(input_price, output_price, origin="--price-input/--price-output")
    return find_price(model, load_price_table(table_path))
