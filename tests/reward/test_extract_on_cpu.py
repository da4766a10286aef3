"""Final-answer extraction and answer normalisation (pure Python, fast)."""

import time

import pytest

from cadft_verl.math.answers import normalize_answer, normalize_gold
from cadft_verl.math.extract import extract_final_answer, gsm8k_final, last_boxed


@pytest.mark.parametrize(
    "text,expected",
    [
        ("so \\boxed{5}", "5"),
        ("\\boxed{1} then \\boxed{2}", "2"),  # several boxes: the last one counts
        ("\\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),  # nested braces
        ("\\boxed{ {a}{b{c}} }", "{a}{b{c}}"),
        ("\\fbox{7}", "7"),
        ("\\boxed {3}", "3"),
        ("\\boxed 7$", "7"),
        ("\\boxed{5} and then \\boxed{", "5"),  # unclosed last box: previous complete one
        ("\\boxed{", None),
        ("no answer here", None),
        ("", None),
        (None, None),
    ],
)
def test_last_boxed(text, expected):
    assert last_boxed(text) == expected


def test_gsm8k_final():
    assert gsm8k_final("a <<1+1=2>>2\n#### 1,000") == "1000"
    assert gsm8k_final("#### 18.") == "18"
    assert gsm8k_final("####\n 18") == "18"
    assert gsm8k_final("no marker") is None
    assert extract_final_answer("x \\boxed{3}\n#### 4") == "3"  # boxed wins
    assert extract_final_answer("x\n#### 4") == "4"
    assert extract_final_answer("x \\boxed{}\n#### 4") == "4"


@pytest.mark.parametrize(
    "text",
    [
        "\\boxed{" * 200_000,  # 1.4e6 chars of unclosed boxes
        "\\boxed{1}" + "\\boxed{" * 200_000,
        "{" * 1_000_000 + "\\boxed{2}",
        "\\fbox{" * 200_000,
        "x" * 1_000_000,
        "####" * 250_000,
        "\\boxed{}" * 200_000,
    ],
)
def test_extraction_is_linear_time(text):
    t = time.perf_counter()
    extract_final_answer(text)
    assert time.perf_counter() - t < 5.0  # hang guard (quadratic rescans took > 30 s here)


def test_unclosed_boxes_fall_back_in_order():
    text = "\\boxed{1}" + "\\boxed{" * 1000
    assert last_boxed(text) == "1"


@pytest.mark.parametrize(
    "raw,expected",
    [
        (27.0, "27"),  # AMC 2023 floats
        (-1.0, "-1"),
        (70, "70"),  # AIME 2025 ints
        ("025", "025"),
        (["$69$,$84$"], "69,84"),  # OlympiadBench list + $..$
        (["$2n$"], "2n"),
        ("Janet sells 9 eggs\n#### 1,000", "1000"),  # GSM8K solution
        ("so the answer is \\boxed{\\frac{1}{2}}.", "\\frac{1}{2}"),  # Minerva solution
        ("\\$18.90", "\\$18.90"),  # escaped dollar kept
        ("", None),
        (None, None),
        ([], None),
    ],
)
def test_normalize_gold(raw, expected):
    assert normalize_gold(raw) == expected


@pytest.mark.parametrize(
    "raw,expected",
    [
        ("\\textbf{(113) }", "113"),
        ("\\mathbf{127}", "127"),
        ("104.", "104"),
        ("1,000", "1000"),
        ("1,3,5", "1,3,5"),  # a list, not a thousands separator
        ("62.5\\%", "62.5"),
        ("m_{\\max }=n^{2}-n-1", "m_{max}=n^{2}-n-1"),
        ("-1./3", "-1/3"),
        ("{(6,31,-1)}", "(6,31,-1)"),  # grouping braces around the whole answer
        ("{{\\text{east}}}", "\\text{east}"),
        ("{1}{2}", "{1}{2}"),  # not one group
        ("\\{1,2\\}", "\\{1,2\\}"),  # a set
    ],
)
def test_normalize_answer(raw, expected):
    assert normalize_answer(raw) == expected
