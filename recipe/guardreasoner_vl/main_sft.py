"""R-SFT entry point: verl's SFT trainer with this recipe's config.

``verl.trainer.sft_trainer`` hard-codes its Hydra config folder (its own package). This module is the
same ``main`` pointed at ``recipe/guardreasoner_vl/config/guardreasoner_vl_sft.yaml``, which composes
verl's ``sft_trainer_engine`` through ``pkg://verl.trainer.config`` and sets the paper's values, and it
runs :class:`~recipe.guardreasoner_vl.sft_trainer.GuardSFTTrainer`: verl's trainer whose model keeps the
vision tower and projector frozen, as the released R-SFT did (``guardreasoner.freeze_*`` in the yaml).
Nothing else differs: dataset (``MultiTurnSFTDataset``), engine, loss and checkpointing are verl's, so
upstream fixes arrive for free. Launch it under torchrun (one process per GPU)::

    torchrun --nproc_per_node=8 -m recipe.guardreasoner_vl.main_sft \\
        data.train_files=data/sft/train.parquet model.path=Qwen/Qwen2.5-VL-3B-Instruct

(``examples/sft/run_sft.sh`` does this for 3B/7B, one or many nodes.)

Before training, :func:`run` validates the config (:func:`recipe.guardreasoner_vl.check_config.validate`,
as ``check-config --this-machine sft``: batch divisibility, token budget, model folder, data files,
flash-attn where the config needs it). verl is imported inside :func:`run`, so
``import recipe.guardreasoner_vl.main_sft`` stays light.
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
from omegaconf import DictConfig

logger = logging.getLogger(__name__)

#: Folder of this recipe's Hydra configs.
CONFIG_DIR = Path(__file__).resolve().parent / "config"
#: The R-SFT config's name in :data:`CONFIG_DIR`.
CONFIG_NAME = "guardreasoner_vl_sft"


def run(config: DictConfig) -> None:
    """Validate ``config`` as ``check-config --this-machine sft`` does, then run the R-SFT trainer on it.

    Every rank validates before ``torch.distributed`` starts, so a bad config fails each rank with the
    same message instead of one rank failing inside a collective.
    """
    from verl.utils.device import auto_set_device

    from recipe.guardreasoner_vl.check_config import validate
    from recipe.guardreasoner_vl.sft_trainer import run_sft

    # Same as verl: trainer.device follows the detected accelerator (or the registered CPU platform).
    auto_set_device(config)
    report = validate(config, "sft", this_machine=True)
    for warning in report.warnings:
        logger.warning("config: %s", warning)
    run_sft(config)


@hydra.main(config_path=str(CONFIG_DIR), config_name=CONFIG_NAME, version_base=None)
def main(config: DictConfig) -> None:
    """Run the R-SFT trainer on ``config`` (what ``verl.trainer.sft_trainer.main`` does, with the freeze), validated first."""
    run(config)


if __name__ == "__main__":
    main()
