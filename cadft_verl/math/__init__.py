"""What every math dataset shares, below the datasets themselves (:mod:`cadft_verl.tasks`) and the reward:

- :mod:`~cadft_verl.math.rows`: the one row reader (JSON lines, JSON arrays, ``{"data": [...]}``, parquet, hub
  datasets; BOM, CRLF, blank lines; errors as ``file:line``).
- :mod:`~cadft_verl.math.prompts`: prompt templates (the training prompt and the evaluation prompt are one object).
- :mod:`~cadft_verl.math.extract` and :mod:`~cadft_verl.math.answers`: final-answer extraction and normalisation.
- :mod:`~cadft_verl.math.ngrams`: normalised tokens and the n-gram overlap index used by decontamination.
"""
