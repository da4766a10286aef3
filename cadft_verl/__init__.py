"""cadft-verl: Compatibility-Aware Dynamic Fine-Tuning (CADFT) as a verl plugin.

Layout (one concern per sub-package), from the launch down:
- ``cadft_verl.main``        the one launch (``python -m verl.trainer.main recipe=...``): its stages in ``launch``.
- ``cadft_verl.launch``      the run folder's layout, the stage type and registry, the warm start (stage 1), verl's
                             GRPO/PPO (stage 2), the eval stage, the watchdog.
- ``cadft_verl.study``       the cold-start study: recipes x seeds, one launch each, the table over seeds.
- ``cadft_verl.demo``        the embedded CPU default, its pretrained tiny base model.
- ``cadft_verl.trainer``     the drop-in SFT stage (verl's SFT trainer with the CADFT loss hook).
- ``cadft_verl.rewrite``     delayed, verified rewriting of incompatible demonstrations.
- ``cadft_verl.history``     the per-sample compatibility history.
- ``cadft_verl.losses``      SFT / DFT / CADFT losses and the sample-compatibility weights.
- ``cadft_verl.eval``        benchmark loading, generation, metrics and reports.
- ``cadft_verl.data``        conversion of math datasets to verl's SFT and RL parquet formats.
- ``cadft_verl.tasks``       one Task per dataset, and their one registry.
- ``cadft_verl.reward``      the math-verify based reward / scorer (deadlines that hold).
- ``cadft_verl.math``        what every dataset shares: row reader, prompts, answers, n-grams.
- ``cadft_verl.config``      the config blocks both entry points share, typed.
- ``cadft_verl.platform``    the CPU platform that lets verl's own trainers run without an accelerator.
- ``cadft_verl.integration`` the ``verl.trainer.main`` alias and the resumable metric history.
- ``cadft_verl.plugin``      what ``import verl`` loads through the ``verl.plugins`` entry point.
- ``cadft_verl.utils``       files a later run reads (atomic writes, tolerant reader, folder lock), paths.
"""

__version__ = "0.1.0"
