"""Hydra recipes of the one launch (``python -m verl.trainer.main recipe=<name>``); shipped as ``cadft_verl.recipes``.

``main.yaml`` (the root: verl's ``ppo_trainer`` + the ``cadft``, ``console``, ``stages`` and ``eval`` blocks),
``recipe/`` (each recipe: its name, stage-1 loss, stages and defaults list), ``rl/`` (the RL stage: ``grpo``,
``ppo``, over ``common``), ``profile/`` (hardware: ``cpu``, ``gpu``). The blocks shared with the drop-in SFT stage
are ``cadft_verl/config/`` (on this root's search path).
"""
