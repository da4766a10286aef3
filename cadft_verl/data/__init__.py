"""Data preparation: math datasets -> verl SFT (``messages``) and RL (``prompt``/``reward_model``) parquet files.

CLI: ``python -m cadft_verl.data convert ...`` and ``python -m cadft_verl.data sample`` (see docs/data.md).
"""

from cadft_verl.data.convert import ConvertConfig, convert
from cadft_verl.data.decontaminate import Decontaminator
from cadft_verl.data.sample import make_sample
from cadft_verl.math.ngrams import normalize_problem
from cadft_verl.data.sources import SOURCES, DataError
from cadft_verl.math.prompts import TEMPLATES, get_template
from cadft_verl.utils.paths import find_benchmarks_dir

__all__ = [
    "ConvertConfig",
    "convert",
    "make_sample",
    "Decontaminator",
    "normalize_problem",
    "find_benchmarks_dir",
    "SOURCES",
    "TEMPLATES",
    "get_template",
    "DataError",
]
