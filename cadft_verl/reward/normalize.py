"""Import path kept for callers: answer normalisation lives in :mod:`cadft_verl.math.answers`."""

from cadft_verl.math.answers import normalize_answer, normalize_gold, number_to_str, strip_dollars

__all__ = ["normalize_answer", "normalize_gold", "number_to_str", "strip_dollars"]
