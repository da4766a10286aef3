"""Final-answer extraction shared by data preparation, the reward and evaluation.

- ``last_boxed(text)``: content of the last ``\\boxed{...}`` (or ``\\fbox{...}``), braces balanced, else None.
- ``gsm8k_final(text)``: the answer after GSM8K's final ``####`` marker, thousands separators removed, else None.
- ``extract_final_answer(text)``: last boxed answer, else the ``####`` answer, else None.

All three run in time linear in ``len(text)`` (no regex backtracking, no quadratic rescans), so they are safe to call
in the parent process on arbitrary model outputs (1e6-character strings, thousands of unclosed ``\\boxed{``).
"""

from __future__ import annotations

import re

_BOX_MARKERS = ("\\boxed", "\\fbox")
_MARKER_RE = re.compile(r"\\(?:boxed|fbox)")
_GSM8K_RE = re.compile(r"####\s*([^\n]+)")


def _last_marker(text: str, end: int) -> int:
    """Start of the last ``\\boxed``/``\\fbox`` strictly before ``end`` (-1 if none)."""
    return max(text.rfind(m, 0, end) for m in _BOX_MARKERS)


def _match_braces(text: str) -> dict[int, int]:
    """Map every ``{`` index to the index of its matching ``}`` (one stack pass, O(n)); unmatched ones are absent.

    For an opening brace at ``i`` this is the same ``j`` that depth counting from ``i`` would find, because every
    brace opened after ``i`` is popped before ``i`` is.
    """
    match: dict[int, int] = {}
    stack: list[int] = []
    for pos, ch in enumerate(text):
        if ch == "{":
            stack.append(pos)
        elif ch == "}" and stack:
            match[stack.pop()] = pos
    return match


def _box_content(text: str, start: int, closing: dict[int, int] | None) -> tuple[str | None, bool]:
    """Content of the box starting at ``start``; second value True when an unbalanced ``{`` was met."""
    marker = next(m for m in _BOX_MARKERS if text.startswith(m, start))
    i = start + len(marker)
    n = len(text)
    while i < n and text[i] == " ":
        i += 1
    if i < n and text[i] == "{":
        if closing is not None:
            j = closing.get(i)
            return (text[i + 1 : j].strip(), False) if j is not None else (None, True)
        depth = 0
        for j in range(i, n):
            c = text[j]
            if c == "{":
                depth += 1
            elif c == "}":
                depth -= 1
                if depth == 0:
                    return text[i + 1 : j].strip(), False
        return None, True
    if marker == "\\boxed" and i < n and text[i - 1] == " ":
        # "\boxed 5" form
        m = re.match(r"\s*([^\s$]+)", text[i : i + 1000])
        if m:
            return m.group(1), False
    return None, False


def last_boxed(text: str | None) -> str | None:
    """Return the content of the last ``\\boxed{}``/``\\fbox{}`` in ``text`` with balanced braces, or None.

    An unclosed last box (``... \\boxed{5} ... \\boxed{``) falls back to the previous complete one.
    """
    if not text:
        return None
    start = _last_marker(text, len(text))
    if start < 0:
        return None
    content, unbalanced = _box_content(text, start, None)
    if content is not None:
        return content
    # Slow path (the last box is unclosed or empty): resolve all braces and all box markers in one pass each,
    # then walk the earlier boxes backwards in O(1) each.
    closing = _match_braces(text) if unbalanced else None
    starts = [m.start() for m in _MARKER_RE.finditer(text, 0, start)]
    for start in reversed(starts):
        if closing is None:
            content, unbalanced = _box_content(text, start, None)
            if unbalanced:
                closing = _match_braces(text)
                content, _ = _box_content(text, start, closing)
        else:
            content, _ = _box_content(text, start, closing)
        if content is not None:
            return content
    return None


def gsm8k_final(text: str | None) -> str | None:
    """Return GSM8K's final answer (after the last ``####``), commas and a trailing period removed, or None."""
    if not text:
        return None
    pos = text.rfind("####")
    if pos < 0:
        return None
    # the last marker that is followed by something on its line
    while pos >= 0:
        m = _GSM8K_RE.match(text, pos)
        if m and m.group(1).strip():
            ans = m.group(1).strip().replace(",", "").rstrip(".").strip()
            if ans:
                return ans
        pos = text.rfind("####", 0, pos)
    return None


def extract_final_answer(text: str | None) -> str | None:
    """Last ``\\boxed{}`` answer, else the GSM8K ``####`` answer, else None."""
    boxed = last_boxed(text)
    if boxed is not None and boxed != "":
        return boxed
    return gsm8k_final(text)
