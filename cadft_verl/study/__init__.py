"""The cold-start study: several recipes over several seeds, one launch per (recipe, seed), and one table.

    python -m cadft_verl.study [--out outputs/study] [--recipes ...] [--seeds 0 1 2] [key=value ...]

- ``arms``: what a study can compare (the four cold-start recipes, the rewriting-off ablation, any other launch
  recipe) and the overrides a seed sets;
- ``plan``: the runs of a study, its folder (``study.json``, a lock), the checks made before any worker starts;
- ``runner``: each run as ``python -m verl.trainer.main`` in its own folder (resumable; a finished run is skipped);
- ``table``: the runs' cold-start reports, aggregated over seeds into ``table.{md,json,png}``;
- ``cli``: the command line.
"""
