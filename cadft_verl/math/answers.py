"""Answer normalisation (the one place for it): reference answers as stored in training data
(:func:`reference_answer`), and reference / extracted answers before math-verify (:func:`normalize_gold`,
:func:`normalize_answer`). Light and dependency-free.

Only things math-verify does not do itself are handled here, each for a data quirk listed in
``/work/shared/benchmarks/MANIFEST.md`` (or a common model-output habit):

- numbers stored as int/float (AIME 2025 ``70``, AMC 2023 ``27.0``) -> ``"70"``, ``"27"``;
- lists (OlympiadBench ``final_answer``) -> elements joined with ``", "``;
- ``$...$`` wrappers (OlympiadBench ``'$69$,$84$'``) and grouping braces around the whole answer removed;
- a gold that still holds a ``\\boxed{}`` (a full solution) or a GSM8K ``####`` answer -> that final answer;
- thousands separators in a plain number (GSM8K ``1,000``) removed;
- percent signs dropped (``62.5\\%`` -> ``62.5``; math-verify cannot parse them), ``_{\\max}`` -> ``_{max}``,
  Python-style Minerva golds (``-1./3``, ``np.arcsin(10/13)``) made parseable;
- text wrappers around a plain number (``\\textbf{(113) }``, ``\\mathbf{127}``, ``104.``) reduced to the number.
"""

from __future__ import annotations

import math
import re
from typing import Any

from cadft_verl.math.extract import gsm8k_final, last_boxed

_THOUSANDS_RE = re.compile(r"^[+-]?\d{1,3}(,\d{3})+(\.\d+)?$")
_WRAPPED_NUMBER_RE = re.compile(
    r"^\\(?:textbf|mathbf|text|mathrm|bf|textrm|boldsymbol)\s*\{\s*\(?\s*([+-]?\d+(?:\.\d+)?)\s*\)?\s*\}$"
)
_PAREN_NUMBER_RE = re.compile(r"^\(\s*([+-]?\d+(?:\.\d+)?)\s*\)$")
_TRAILING_PERIOD_NUMBER_RE = re.compile(r"^([+-]?\d+(?:\.\d+)?)\s*\.$")
_DOLLAR_RE = re.compile(r"(?<!\\)\$")
_PERCENT_RE = re.compile(r"\s*\\?%")
_SUB_MAXMIN_RE = re.compile(r"_\{\s*\\(max|min)\s*\}")
_PY_FLOAT_DOT_RE = re.compile(r"(?<=\d)\.(?=\s*[/*])")
_NUMPY_PREFIX_RE = re.compile(r"\b(?:np|numpy|math)\.(?=[a-z])")


def number_to_str(x: float | int) -> str:
    """``27.0 -> "27"``, ``-1.0 -> "-1"``, ``0.5 -> "0.5"`` (integral floats lose their ``.0``)."""
    if isinstance(x, bool):
        return str(int(x))
    if isinstance(x, int):
        return str(x)
    if math.isfinite(x) and float(x).is_integer():
        return str(int(x))
    return repr(float(x))


def strip_dollars(s: str) -> str:
    """Remove unescaped ``$`` signs (``'$69$,$84$' -> '69,84'``; ``\\$`` kept)."""
    if "$" not in s:
        return s
    return _DOLLAR_RE.sub("", s).strip()


def _strip_outer_braces(s: str) -> str:
    """``{{x}}`` -> ``x`` when the first brace closes at the very end (pure grouping); linear per layer."""
    while len(s) >= 2 and s[0] == "{" and s[-1] == "}" and len(s) <= 10_000:
        depth = 0
        for i, ch in enumerate(s):
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
                if depth == 0 and i != len(s) - 1:
                    return s
        s = s[1:-1].strip()
    return s


def normalize_answer(ans: str) -> str:
    """Normalise one extracted/reference answer string (see module docstring). Linear time."""
    s = ans.strip()
    s = strip_dollars(s)
    s = _strip_outer_braces(s)
    # drop a trailing full stop / comma after the answer ("104." in an AIME solution)
    m = _TRAILING_PERIOD_NUMBER_RE.match(s)
    if m:
        s = m.group(1)
    if "%" in s:  # "62.5\\%" / "8 %": math-verify does not parse percent signs; compare the number
        s = _PERCENT_RE.sub("", s).strip()
    if "_{" in s:  # "m_{\\max }=..." (OlympiadBench) -> "m_{max}=..."
        s = _SUB_MAXMIN_RE.sub(r"_{\1}", s)
    if "." in s and len(s) <= 200:  # Minerva's Python-style golds: "-1./3", "np.arcsin(10/13)"
        s = _NUMPY_PREFIX_RE.sub("", _PY_FLOAT_DOT_RE.sub("", s))
    if len(s) <= 200:
        m = _WRAPPED_NUMBER_RE.match(s) or _PAREN_NUMBER_RE.match(s)
        if m:
            s = m.group(1)
        if _THOUSANDS_RE.match(s):
            s = s.replace(",", "")
    return s


def squash(s: str) -> str:
    """``s`` without any whitespace (the string-level equality both the reward and its workers use)."""
    return "".join(s.split())


def _number_or_text(value: Any) -> str | None:
    """A number as text (``27.0 -> "27"``), a string stripped, None for anything else or a non-finite float."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if isinstance(value, float) and not math.isfinite(value):
            return None
        return number_to_str(value)
    return value.strip() if isinstance(value, str) else None


def final_of_solution(s: str) -> str | None:
    """The final answer of a worked solution: its last ``\\boxed{}``, else its GSM8K ``####`` answer; ``s`` itself
    when it has neither marker; None when it has a marker but no answer behind it."""
    if "\\boxed" in s or "\\fbox" in s:
        return last_boxed(s)
    if "####" in s:
        return gsm8k_final(s)
    return s


def normalize_gold(ground_truth: Any) -> str | None:
    """Reference answer in any published form -> one answer string for comparison (None when there is none)."""
    if isinstance(ground_truth, bool):
        return str(ground_truth)
    if isinstance(ground_truth, (list, tuple)) or type(ground_truth).__name__ == "ndarray":
        parts = [normalize_gold(x) for x in list(ground_truth)]
        parts = [p for p in parts if p]
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else ", ".join(parts)
    if isinstance(ground_truth, (int, float)):
        s = _number_or_text(ground_truth)
    else:
        s = None if ground_truth is None else str(ground_truth).strip()
    if not s:
        return None
    s = normalize_answer(final_of_solution(s) or s)
    return s or None


#: reference answers that say there is none (NuminaMath ``proof``, OpenR1 ``notfound``)
INVALID_ANSWERS = {"", "proof", "notfound"}


def reference_answer(value: Any) -> str | None:
    """Reference answer as stored in training data: a boxed or ``####`` answer extracted, ``$...$`` removed, numbers
    stringified, otherwise verbatim (comparison normalises it again, :func:`normalize_gold`). None when there is
    nothing usable: empty, ``proof``, ``notfound``, a list of several answers, a non-string."""
    if isinstance(value, (list, tuple)):
        return reference_answer(value[0]) if len(value) == 1 else None
    text = _number_or_text(value)
    if text is None:
        return None
    text = (final_of_solution(text) or "").strip()
    while len(text) >= 2 and text.startswith("$") and text.endswith("$"):
        text = text[1:-1].strip()
    return None if text.lower() in INVALID_ANSWERS else text
