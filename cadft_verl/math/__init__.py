"""The one math-data layer that training data, decontamination, evaluation and the reward share.

- :mod:`~cadft_verl.math.rows`: the row reader (JSON lines, JSON arrays, ``{"data": [...]}``, parquet; BOM, CRLF,
  blank lines; errors as ``file:line``).
- :mod:`~cadft_verl.math.specs`: the registry of dataset specs (question fields, answer extraction, id, file).
- :mod:`~cadft_verl.math.prompts`: prompt templates (the training prompt and the evaluation prompt are one object).
- :mod:`~cadft_verl.math.extract` and :mod:`~cadft_verl.math.answers`: final-answer extraction and normalisation.
- :mod:`~cadft_verl.math.ngrams`: normalised tokens and the n-gram overlap index used by decontamination.
"""
