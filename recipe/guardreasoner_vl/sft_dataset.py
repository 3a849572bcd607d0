"""verl's ``MultiTurnSFTDataset`` made safe for batches that mix text-only and image rows.

GuardReasoner-VLTrain mixes modalities (63,799 text, 13,267 image and 46,030 text-image rows), so
almost every R-SFT batch holds both kinds. In verl 0.9.1 such a batch never reaches the model:

- ``MultiTurnSFTDataset.__getitem__`` returns a ``multi_modal_inputs`` entry only for rows that
  have an image (``if len(multi_modal_inputs) > 0``);
- ``SFTTensorCollator.collate_variable_batch`` (``verl/utils/dataset/dataset_utils.py``) takes the
  union of the rows' keys and then reads ``batch[0][key]``: when the first row is text-only that is
  ``KeyError: 'multi_modal_inputs'``, and when it is an image row the text rows contribute ``None``.

The model side already handles mixed batches (``verl.utils.model.extract_multi_modal_inputs`` skips
empty entries, "Mixed pure text and multi-modal dataset"); only the row layout is inconsistent.
This subclass gives every row the key (an empty dict for text-only rows) and changes nothing else.
It is selected through verl's own hook, ``data.custom_cls`` (set in ``guardreasoner_vl_sft.yaml``).
"""

from __future__ import annotations

from typing import Any

from verl.utils.dataset.multiturn_sft_dataset import MultiTurnSFTDataset

#: The per-row key verl's collator must find in every row of a batch.
MULTI_MODAL_KEY = "multi_modal_inputs"


class GuardSFTDataset(MultiTurnSFTDataset):
    """``MultiTurnSFTDataset`` whose rows all carry ``multi_modal_inputs`` (empty for text-only rows)."""

    def __getitem__(self, item: int) -> dict[str, Any]:
        row = super().__getitem__(item)
        # Only with a processor (a VLM): a text-only model's rows must keep verl's layout.
        if self.processor is not None:
            row.setdefault(MULTI_MODAL_KEY, {})
        return row
