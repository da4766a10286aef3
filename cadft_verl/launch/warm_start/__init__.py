"""Stage 1 of the one launch, the warm start (``stage.WarmStart``): its plan, Ray workers, training step, rewrite
rounds, per-sample log and checkpoints, one file each."""

from .plan import save_every
from .stage import WarmStart, model_id

__all__ = ["WarmStart", "model_id", "save_every"]
