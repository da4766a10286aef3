"""The one launch's machinery (``cadft_verl.main`` is its entry point): the run folder's layout (``run_dir``), the
stage type and registry (``stages``), the stages in their order: the warm start (``warm_start_stage``, the loop in
``warm_start/``), verl's RL trainer (``rl``) and the evaluation with the cold-start report (``evaluate``); Ray's
start and stop (``ray_cluster``) and the console's view of a stage's metric history (``progress``)."""

from cadft_verl.launch import (
    evaluate,  # noqa: F401  (registers ``eval``)
    rl,  # noqa: F401  (registers ``rl``)
    warm_start_stage,  # noqa: F401  (registers ``cadft``)
)
from cadft_verl.launch.run_dir import RunDir, StageDir
from cadft_verl.launch.stages import STAGES, Launch, Stage

__all__ = ["STAGES", "Launch", "RunDir", "Stage", "StageDir"]
