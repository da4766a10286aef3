"""Import path kept for callers: the extraction helpers live in :mod:`cadft_verl.math.extract`."""

from cadft_verl.math.extract import extract_final_answer, gsm8k_final, last_boxed

__all__ = ["extract_final_answer", "gsm8k_final", "last_boxed"]
