"""Data preparation: math datasets (the tasks of :mod:`cadft_verl.tasks`) -> verl SFT (``messages``) and RL
(``prompt``/``reward_model``) parquet files, deduplicated and decontaminated against the evaluation benchmarks.

- :mod:`~cadft_verl.data.convert`: the conversion pipeline (:func:`convert`), driven by a task;
- :mod:`~cadft_verl.data.decontaminate`: exact and n-gram matching against the benchmark files;
- :mod:`~cadft_verl.data.writer`: the output folder a conversion owns (all-or-nothing files, the record of them);
- :mod:`~cadft_verl.data.sample`: the embedded datasets (the arithmetic task, a GSM8K sample).

CLI: ``python -m cadft_verl.data convert ...``, ``arith`` and ``sample`` (see docs/data.md).
"""

from cadft_verl.data.convert import ConvertConfig, DataError, convert
from cadft_verl.data.decontaminate import Decontaminator
from cadft_verl.data.sample import make_arith, make_sample

__all__ = ["ConvertConfig", "DataError", "Decontaminator", "convert", "make_arith", "make_sample"]
