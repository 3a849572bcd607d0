"""Registrations with verl, imported by verl itself in every process (``verl.plugins`` entry point).

verl swallows import errors of plugins (logged at debug level), so ``tests/test_plugin.py`` runs a
fresh interpreter and checks that each registration below really happened.

What is registered:

- the ``guardreasoner_dynamic_clip`` policy loss (:mod:`recipe.guardreasoner_vl.policy_loss`);
- the ``guardreasoner_token_length`` reward manager (:mod:`recipe.guardreasoner_vl.reward_manager`);
- the opt-in CPU backend (:mod:`recipe.guardreasoner_vl.cpu_backend`): a ``cpu`` platform and the
  ``hf`` rollout. Registering them changes nothing unless a run selects them.
"""

import importlib
import logging

logger = logging.getLogger(__name__)

_MODULES = (
    "recipe.guardreasoner_vl.policy_loss",
    "recipe.guardreasoner_vl.reward_manager",
    "recipe.guardreasoner_vl.cpu_backend",
)

for _name in _MODULES:
    importlib.import_module(_name)
