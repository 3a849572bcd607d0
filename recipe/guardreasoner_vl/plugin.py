"""Registrations with verl, imported by verl itself in every process (``verl.plugins`` entry point).

verl swallows import errors of plugins (logged at debug level only), so each registration module is
imported on its own and a failure is logged as a *warning* naming the module: one broken piece
never hides the others, and the failure is visible in the run's log. ``tests/test_plugin.py`` runs
a fresh interpreter and checks that each registration below really happened.

What is registered:

- the ``guardreasoner_dynamic_clip`` policy loss (:mod:`recipe.guardreasoner_vl.policy_loss`);
- the ``guardreasoner_token_length`` reward manager (:mod:`recipe.guardreasoner_vl.reward_manager`);
- the opt-in CPU backend (:mod:`recipe.guardreasoner_vl.cpu_backend`): a ``cpu`` platform and the
  ``hf`` rollout. Registering them changes nothing unless a run selects them;
- fixes of verl 0.9.1 bugs that break the recipe on any platform (:mod:`recipe.guardreasoner_vl.verl_fixes`),
  installed lazily and only where the bug is present.
"""

import importlib
import logging

logger = logging.getLogger(__name__)

REGISTRATION_MODULES = (
    "recipe.guardreasoner_vl.policy_loss",
    "recipe.guardreasoner_vl.reward_manager",
    "recipe.guardreasoner_vl.cpu_backend",
)

for _name in REGISTRATION_MODULES:
    try:
        importlib.import_module(_name)
    except Exception as _err:  # noqa: BLE001 - verl would hide it; we say which module failed and go on
        logger.warning("guardreasoner_vl plugin: could not import %s: %r", _name, _err)

try:
    from recipe.guardreasoner_vl import verl_fixes as _verl_fixes

    _verl_fixes.apply()
except Exception as _err:  # noqa: BLE001 - same policy as above
    logger.warning("guardreasoner_vl plugin: could not install verl fixes: %r", _err)
