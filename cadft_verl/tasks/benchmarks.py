"""The evaluation benchmarks whose rows need nothing beyond what a :class:`~cadft_verl.tasks.base.Task` declares:
MATH-500, Minerva math, OlympiadBench, AIME 2024, AMC 2023 (the paper's average) and AIME 2025.

Their files are the Qwen2.5-Math evaluation layout below the benchmarks folder (``<dir>/<name>/test.jsonl``); the
quirks of their golds (AMC floats, AIME ints, OlympiadBench's ``$``-wrapped lists, Minerva's boxed solutions) are
read by the gold kinds of :mod:`cadft_verl.tasks.base` and normalised by :mod:`cadft_verl.math.answers`.
MATH-500 is 500 problems of MATH's test split; as training data, ``math500`` (alias ``math``) reads MATH itself.
"""

from __future__ import annotations

from cadft_verl.tasks.base import Hub, Task

MATH500 = Task(
    "math500", "MATH-500", "MATH / MATH-500: problem, solution (with \\boxed{}), optional answer",
    ("problem",), "answer", "answer", "unique_id", "solution", aliases=("math", "math_500", "math-500"),
    hub=Hub("DigitalLearningGmbH/MATH-lighteval"), test_hub=Hub("HuggingFaceH4/MATH-500", train=None),
    default_path="math/test.jsonl", alt_paths=("math500/test.jsonl", "math_500/test.jsonl"), expected_rows=500,
    in_paper_average=True,
)
MINERVA = Task(
    "minerva_math", "Minerva", "Minerva math: problem, solution (the answer is its last \\boxed{})",
    ("problem",), "solution", "last_boxed", "idx", "solution", aliases=("minerva", "minervamath"),
    hub=Hub("math-ai/minervamath", train=None), default_path="minerva_math/test.jsonl", expected_rows=272,
    in_paper_average=True,
)
OLYMPIADBENCH = Task(
    "olympiadbench", "OlympiadBench", "OlympiadBench (open-ended maths, English): question, final_answer (a list)",
    ("question", "problem"), "final_answer", "list", "id", aliases=("olympiad", "olympiad_bench"),
    hub=Hub("Hothan/OlympiadBench", "OE_TO_maths_en_COMP", train=None, test="train"),
    default_path="olympiadbench/test.jsonl", expected_rows=675, in_paper_average=True,
)
AIME24 = Task(
    "aime24", "AIME24", "AIME 2024: problem, solution, answer (an int)", ("problem", "question"), "answer",
    "answer", "id", "solution", aliases=("aime2024", "aime_2024"),
    hub=Hub("HuggingFaceH4/aime_2024", train=None, test="train"), default_path="aime24/test.jsonl",
    expected_rows=30, in_paper_average=True,
)
AMC23 = Task(
    "amc23", "AMC23", "AMC 2023: question, answer (a float)", ("problem", "question"), "answer", "answer", "id",
    aliases=("amc2023", "amc_2023", "amc"), hub=Hub("math-ai/amc23", train=None), default_path="amc23/test.jsonl",
    expected_rows=40, in_paper_average=True,
)
AIME25 = Task(
    "aime25", "AIME25", "AIME 2025: problem, answer", ("problem", "question"), "answer", "answer", "id",
    aliases=("aime2025", "aime_2025"), hub=Hub("math-ai/aime25", train=None), default_path="aime25/test.jsonl",
    expected_rows=30,
)
