"""What ``import verl`` loads through the ``verl.plugins`` entry point, in the driver and in every Ray worker.

It registers everything this project adds to verl:
- ``python -m verl.trainer.main`` (the one launch, ``cadft_verl.main``);
- the ``cpu`` platform (``PlatformRegistry``), wired up when ``VERL_PLATFORM=cpu``;
- the CADFT/DFT/SFT losses (importable as ``cadft_verl.losses``; the trainers install them with verl's
  ``set_loss_fn`` hook);
- under the one launch (``CADFT_VERL_RESUMABLE_METRICS=1``), the file-logger backend that keeps a stage's metric
  history across a resume (``cadft_verl.integration.metrics_history``).

verl swallows plugin import errors (logged at debug level only), so a broken plugin would fail silently. This module
therefore reports any failure itself, on stderr, before re-raising; ``cadft_verl.plugin.ensure_loaded()`` lets
entry points check that the plugin really ran.
"""

from __future__ import annotations

import logging
import sys
import traceback

logger = logging.getLogger("cadft_verl")

LOADED = False


def _load() -> None:
    from cadft_verl.integration.launcher_alias import install
    from cadft_verl.platform import activate_cpu_platform, cpu_platform_selected
    from cadft_verl.integration.metrics_history import install_if_requested

    install()
    if cpu_platform_selected():
        activate_cpu_platform()
    install_if_requested()


def ensure_loaded() -> None:
    """Raise if the plugin did not load (e.g. verl was imported with VERL_USE_EXTERNAL_PLUGINS=none)."""
    import verl  # noqa: F401  (loads entry-point plugins)

    if not LOADED:
        # verl did not run the entry point (plugins disabled, or not installed as a package): load it now, loudly.
        _load_loudly()


def _load_loudly() -> None:
    global LOADED
    try:
        _load()
    except Exception:
        msg = "cadft_verl: the verl plugin failed to load:\n" + traceback.format_exc()
        print(msg, file=sys.stderr, flush=True)
        logger.error(msg)
        raise
    LOADED = True


_load_loudly()
