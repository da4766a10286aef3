"""Evaluation outputs a rerun depends on are never lost or silently wrong.

- a failed ``eval run`` into a folder of an earlier run keeps that run's samples.jsonl and metrics.json (the run once
  emptied samples.jsonl before generating);
- ``rescore``: duplicate problem ids are refused (they were merged: 3 problems x k=2 became 2 x 4), an empty file, a
  row without ``response`` and a broken row are errors naming the file and the row; a cut last line is dropped with
  a warning; a correct file gives the right counts;
- ``--out`` naming a file is a one-line error (exit 2), not a NotADirectoryError traceback.
"""

from __future__ import annotations

import json
import os

import pytest

from cadft_verl.eval.benchmarks import BenchmarkError
from cadft_verl.eval.cli import main
from cadft_verl.eval.runner import RunConfig, run_eval


class ScriptedGenerator:
    """Sample j of every problem answers \\boxed{j}; ``fail_on`` (a benchmark name) raises instead."""

    name = "scripted"

    def __init__(self, tokenizer, fail_on: str | None = None):
        self.tokenizer = tokenizer
        self.fail_on = fail_on

    def generate(self, prompts, s, add_special_tokens=False, desc=""):
        if desc == self.fail_on:
            raise RuntimeError(f"generation of {desc} failed")
        return [[f"so \\boxed{{{j}}}" for j in range(s.k)] for _ in prompts]


@pytest.fixture(scope="module")
def tokenizer():
    from cadft_verl.demo.tiny_model import build_tokenizer

    return build_tokenizer()


def _cfg(out, bench_file, **kw) -> RunConfig:
    return RunConfig(model="scripted-model", out=str(out), benchmarks=[f"one={bench_file}", f"two={bench_file}"],
                     template="chat", k=2, score_workers=1, label="scripted", **kw)


def _files(folder) -> dict[str, bytes]:
    return {name: (folder / name).read_bytes() for name in sorted(os.listdir(folder))}


def test_failed_rerun_keeps_the_earlier_outputs(tmp_path, tokenizer, two_problems):
    out = tmp_path / "run"
    m = run_eval(_cfg(out, two_problems), generator=ScriptedGenerator(tokenizer))
    assert m["benchmarks"]["one"]["n_problems"] == 2 and m["settings"]["k"] == 2
    before = _files(out)
    assert set(before) == {"samples.jsonl", "metrics.json", "metrics.md", "metrics.png"}
    assert len(before["samples.jsonl"].splitlines()) == 2 * 2 * 2
    # the rerun fails on its second benchmark, after the first one's samples were written
    with pytest.raises(RuntimeError, match="generation of two failed"):
        run_eval(_cfg(out, two_problems, seed=1), generator=ScriptedGenerator(tokenizer, fail_on="two"))
    assert _files(out) == before  # the same files, byte for byte, and no temporary file left behind
    # a complete rerun replaces them
    m2 = run_eval(_cfg(out, two_problems, seed=1), generator=ScriptedGenerator(tokenizer))
    assert json.loads((out / "metrics.json").read_text())["settings"]["seed"] == 1 == m2["settings"]["seed"]
    assert set(_files(out)) == set(before)


def test_duplicate_problem_ids_in_a_benchmark_are_refused_before_generation(tmp_path, tokenizer):
    bench = tmp_path / "dup.jsonl"
    rows = [{"id": "a", "problem": "1+1?", "answer": "2"}, {"id": "b", "problem": "2+2?", "answer": "4"},
            {"id": "a", "problem": "3+3?", "answer": "6"}]
    bench.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = RunConfig(model="m", out=str(tmp_path / "o"), benchmarks=[f"dup={bench}"], template="chat", k=2)
    with pytest.raises(BenchmarkError, match=rf"{bench}.*problem id 'a' is used twice \({bench}:1 and {bench}:3\)"):
        run_eval(cfg, generator=ScriptedGenerator(tokenizer))


# ------------------------------------------------------------------------------------------------ rescore
def _sample(bench, pid, j, response, gold):
    return {"benchmark": bench, "problem_id": pid, "sample": j, "prompt": "p", "response": response, "gold": gold,
            "extracted_answer": None, "correct": False, "no_answer": True, "timed_out": False, "error": None}


def _write(path, rows, tail: str = ""):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + tail)
    return path


def _rescore(src, out, capsys) -> tuple[int, str]:
    rc = main(["rescore", "--samples", str(src), "--out", str(out), "--score-workers", "0"])
    err = capsys.readouterr().err
    return rc, err


def test_rescore_counts_problems_and_samples(tmp_path, capsys):
    rows = [_sample("b", pid, j, f"\\boxed{{{gold if j == 0 else 0}}}", gold)
            for pid, gold in (("p1", "1"), ("p2", "2"), ("p3", "3")) for j in range(2)]
    src = _write(tmp_path / "run" / "samples.jsonl", rows)
    rc, err = _rescore(src, tmp_path / "re", capsys)
    assert rc == 0, err
    m = json.loads((tmp_path / "re" / "metrics.json").read_text())["benchmarks"]["b"]
    assert (m["n_problems"], m["k"], m["n_samples"]) == (3, 2, 6)
    assert m["avg@2"]["mean"] == pytest.approx(0.5) and m["pass@2"]["mean"] == 1.0


def test_rescore_refuses_duplicate_problem_ids(tmp_path, capsys):
    """Three problems, k=2, two of them sharing the id p1: was scored as 2 problems x 4 samples."""
    rows = [_sample("b", pid, j, "\\boxed{1}", gold)
            for pid, gold in (("p1", "1"), ("p2", "2"), ("p1", "3")) for j in range(2)]
    src = _write(tmp_path / "run" / "samples.jsonl", rows)
    rc, err = _rescore(src, tmp_path / "re", capsys)
    assert rc == 2
    assert f"{src}: rows 1 and 5 are both sample 0 of problem 'p1' of 'b'" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "re" / "metrics.json").exists()


def test_rescore_empty_missing_field_and_broken_rows(tmp_path, capsys):
    empty = _write(tmp_path / "empty" / "samples.jsonl", [])
    rc, err = _rescore(empty, tmp_path / "re1", capsys)
    assert rc == 2 and f"{empty}: no samples (the file is empty)" in err

    rows = [_sample("b", "p1", j, "\\boxed{1}", "1") for j in range(2)]
    del rows[1]["response"]
    src = _write(tmp_path / "missing" / "samples.jsonl", rows)
    rc, err = _rescore(src, tmp_path / "re2", capsys)
    assert rc == 2 and f"{src}: row 2 has no 'response' field" in err

    ok = [_sample("b", "p1", j, "\\boxed{1}", "1") for j in range(3)]
    broken = _write(tmp_path / "broken" / "samples.jsonl", ok[:1], tail="{not json\n" + json.dumps(ok[2]) + "\n")
    rc, err = _rescore(broken, tmp_path / "re3", capsys)
    assert rc == 2 and f"{broken}: line 2 is not valid JSON" in err


def test_rescore_drops_a_cut_last_line_with_a_warning(tmp_path, capsys):
    rows = [_sample("b", "p1", j, "\\boxed{1}", "1") for j in range(2)]
    src = _write(tmp_path / "run" / "samples.jsonl", rows, tail=json.dumps(rows[0])[:30])
    with pytest.warns(UserWarning, match="line 3 is cut"):
        rc, err = _rescore(src, tmp_path / "run", capsys)  # into the samples' own folder
    assert rc == 0, err
    assert len((tmp_path / "run" / "samples.jsonl").read_text().splitlines()) == 2
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["benchmarks"]["b"]["avg@2"]["mean"] == 1.0


def test_out_naming_a_file_is_a_one_line_error(tmp_path, capsys, two_problems):
    a_file = tmp_path / "not_a_folder"
    a_file.write_text("x")
    for argv in (["run", "--model", "m", "--out", str(a_file), "--benchmarks", f"x={two_problems}"],
                 ["run", "--model", "m", "--out", str(a_file / "sub"), "--benchmarks", f"x={two_problems}"],
                 ["rescore", "--samples", str(tmp_path), "--out", str(a_file)],
                 ["compare", "--before", "x=y.json", "--out", str(a_file)]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: --out {argv[argv.index('--out') + 1]}: not a folder") and len(
            err.splitlines()) == 1, err
    assert a_file.read_text() == "x"
