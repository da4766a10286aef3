"""cadft-verl: Compatibility-Aware Dynamic Fine-Tuning (CADFT) as a verl plugin.

Layout (one concern per sub-package):
- ``cadft_verl.losses``   SFT / DFT / CADFT losses and the sample-compatibility weights.
- ``cadft_verl.platform`` the CPU platform that lets verl's own trainers run without an accelerator.
- ``cadft_verl.trainer``  the drop-in SFT stage (verl's SFT trainer with the CADFT loss hook).
- ``cadft_verl.data``     conversion of math datasets to verl's SFT and RL parquet formats.
- ``cadft_verl.reward``   the math-verify based reward / scorer (thread-safe timeouts).
- ``cadft_verl.eval``     benchmark loading, generation, metrics and reports.
- ``cadft_verl.plugin``   what ``import verl`` loads through the ``verl.plugins`` entry point.
"""

__version__ = "0.1.0"
