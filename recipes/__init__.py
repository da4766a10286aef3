"""Hydra recipes of the one launch (``python -m verl.trainer.main recipe=<name>``); shipped as ``cadft_verl.recipes``."""
