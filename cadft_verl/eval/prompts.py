"""Evaluation prompt templates: the same objects as the training data's (:mod:`cadft_verl.math.prompts`).

The chosen template's name and text are recorded in every evaluation output (``PromptTemplate.record``).
"""

from cadft_verl.math.prompts import BOXED_INSTRUCTION, TEMPLATES, PromptTemplate, get_template

__all__ = ["BOXED_INSTRUCTION", "TEMPLATES", "PromptTemplate", "get_template"]
