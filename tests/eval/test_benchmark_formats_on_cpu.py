"""One row reader for every layout: the same benchmark from JSONL, JSONL with a byte-order mark and CRLF line ends,
a JSON array, ``{"data": [...]}`` and parquet gives the same questions and golds, in evaluation, decontamination and
data conversion alike."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from cadft_verl.data.convert import ConvertConfig, convert
from cadft_verl.data.decontaminate import Decontaminator
from cadft_verl.eval.benchmarks import BenchmarkError, benchmarks_dir, load_benchmark

ROWS = [  # AMC-like float golds; unicode and LaTeX in the questions
    {"id": 0, "problem": "What is $1+1$?", "answer": 2.0},
    {"id": 1, "problem": "Find x if 2x = 6.", "answer": 3.0},
    {"id": 2, "problem": "Compute \\frac{1}{2} + \\frac{1}{2}, with ünïcode.", "answer": 1.0},
]


def _layouts(rows, tmp_path):
    lines = [json.dumps(r, ensure_ascii=False) for r in rows]
    files = {}
    files["jsonl"] = tmp_path / "a.jsonl"
    files["jsonl"].write_text("\n".join(lines) + "\n", encoding="utf-8")
    files["bom_crlf"] = tmp_path / "b.jsonl"
    files["bom_crlf"].write_bytes(b"\xef\xbb\xbf" + ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8"))
    files["array"] = tmp_path / "c.json"
    files["array"].write_text(json.dumps(rows, ensure_ascii=False, indent=1), encoding="utf-8")
    files["wrapped"] = tmp_path / "d.json"
    files["wrapped"].write_bytes(b"\xef\xbb\xbf" + json.dumps({"data": rows}).encode("utf-8"))
    files["parquet"] = tmp_path / "e.parquet"
    pd.DataFrame(rows).to_parquet(files["parquet"])
    return files


def test_eval_loader_reads_every_layout_the_same(tmp_path):
    files = _layouts(ROWS, tmp_path)
    seen = {kind: [(p.id, p.question, p.gold) for p in load_benchmark(f"mine={path}").problems]
            for kind, path in files.items()}
    ref = seen.pop("jsonl")
    assert [g for _, _, g in ref] == ["2", "3", "1"]
    for kind, got in seen.items():
        assert got == ref, kind


def test_real_benchmark_in_every_layout(tmp_path):
    bdir = benchmarks_dir()
    src = f"{bdir}/olympiadbench/test.jsonl"
    try:
        orig = load_benchmark("olympiadbench", limit=40)
    except BenchmarkError:
        pytest.skip("no shared benchmarks")
    with open(src, encoding="utf-8") as f:
        rows = [json.loads(next(f)) for _ in range(40)]
    files = _layouts(rows, tmp_path)
    for kind, path in files.items():
        b = load_benchmark(f"olympiadbench={path}")
        assert [(p.id, p.question, p.gold) for p in b.problems] == [
            (p.id, p.question, p.gold) for p in orig.problems], kind


def test_decontamination_and_conversion_read_them_the_same(tmp_path):
    files = _layouts(ROWS, tmp_path)
    for kind, path in files.items():
        d = Decontaminator(n=0)
        assert d.add_file(path) == 3, kind
        assert [d.find(r["problem"]).id for r in ROWS] == ["0", "1", "2"], kind
        out = tmp_path / f"o_{kind}"
        convert(ConvertConfig(out=str(out), source="generic", input=str(path), question_field="problem",
                              formats=("rl",), decontaminate=False, progress=False, quiet=True))
        rl = pd.read_parquet(out / "rl/train.parquet")
        assert [e["question"] for e in rl.extra_info] == [r["problem"] for r in ROWS], kind


def test_bad_line_is_named_with_its_line_number_after_a_bom(tmp_path):
    p = tmp_path / "bad.jsonl"
    p.write_bytes(b"\xef\xbb\xbf" + b'{"problem": "q", "answer": "1"}\r\n\r\n{"problem": \r\n')
    with pytest.raises(BenchmarkError, match=f"{p}:3: malformed JSON"):
        load_benchmark(f"x={p}")


def test_file_with_no_usable_row_says_why(tmp_path):
    p = tmp_path / "empty_q.jsonl"
    p.write_text("\n".join(json.dumps({"problem": "   ", "answer": str(i)}) for i in range(5)) + "\n")
    with pytest.raises(BenchmarkError, match=rf"no usable row; the first ones: {p}:1: no question field"):
        load_benchmark(f"x={p}")
