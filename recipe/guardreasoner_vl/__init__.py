"""GuardReasoner-VL on verl: the reasoning-guard recipe as a thin verl plugin.

Importing this package is cheap (no torch/verl import). The registrations with verl (policy loss,
reward manager, CPU backend) happen in :mod:`recipe.guardreasoner_vl.plugin`, which verl imports in
every process through the ``verl.plugins`` entry point.
"""

__version__ = "0.1.0"
