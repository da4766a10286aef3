"""Conversion of the real benchmark files in ../shared/benchmarks: counts, answers that verify, decontamination,
and the `sample` command the main job calls."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pandas as pd
import pytest
from data_test_utils import read_summary, write_jsonl
from math_verify import parse, verify

from cadft_verl.data.convert import ConvertConfig, convert
from cadft_verl.data.decontaminate import benchmark_files

MANIFEST_ROWS = {"gsm8k/train.jsonl": 7473, "gsm8k/test.jsonl": 1319, "math/test.jsonl": 500}


def _lines(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _verifies(gt: str, text: str) -> bool:
    return verify(parse("\\boxed{" + gt + "}", parsing_timeout=5), parse(text, parsing_timeout=5), timeout_seconds=5)


@pytest.mark.parametrize("rel,n", sorted(MANIFEST_ROWS.items()))
def test_counts_match_manifest(bench_dir, rel, n):
    assert len(_lines(bench_dir / rel)) == n


def test_gsm8k_every_row_converts_and_its_ground_truth_verifies(bench_dir, gsm8k_out):
    s = read_summary(gsm8k_out)
    assert s["rows_in"] == {"train": 7473, "val": 1319}
    assert s["rows_out"] == {"train": 7473, "val": 1319} and s["dropped_total"] == {}
    for split, raw_file in (("train", "gsm8k/train.jsonl"), ("val", "gsm8k/test.jsonl")):
        raw = _lines(bench_dir / raw_file)
        sft = pd.read_parquet(gsm8k_out / f"sft/{split}.parquet")
        rl = pd.read_parquet(gsm8k_out / f"rl/{split}.parquet")
        assert list(sft.extra_info.map(lambda e: e["index"])) == list(range(len(raw)))  # stable index = row position
        bad = []
        for msgs, ei, rm in zip(sft.messages, sft.extra_info, rl.reward_model):
            gt, resp = ei["ground_truth"], msgs[-1]["content"]
            src = raw[ei["index"]]
            assert gt == rm["ground_truth"] == src["answer"].split("####")[-1].strip().replace(",", "")
            assert msgs[1]["content"].startswith(src["question"])
            assert "<<" not in resp and "####" not in resp and resp.endswith("\n\\boxed{" + gt + "}")
            if not _verifies(gt, resp):
                bad.append(ei["index"])
        assert not bad, f"{split}: ground truth does not verify for rows {bad[:10]}"


def test_math500_every_row_converts_and_verifies_against_its_solution(bench_dir, math500_out):
    raw = _lines(bench_dir / "math/test.jsonl")
    s = read_summary(math500_out)
    assert s["rows_out"]["train"] == 500 and s["dropped_total"] == {}
    sft = pd.read_parquet(math500_out / "sft/train.parquet")
    bad = []
    for msgs, ei in zip(sft.messages, sft.extra_info):
        src = raw[ei["index"]]
        assert ei["ground_truth"] == src["answer"].strip() and msgs[-1]["content"] == src["solution"]
        if not _verifies(ei["ground_truth"], src["solution"]):
            bad.append(src["unique_id"])
    assert not bad, f"ground truth does not verify for {bad[:10]}"


def _perturb(p: str, k: int) -> str:
    """Same problem, written differently: whitespace, case, LaTeX spacing, $ and \\dfrac."""
    variants = [
        lambda t: "  " + re.sub(r" ", "   ", t).upper() + "\n",
        lambda t: t.replace(" ", "\n\t", 3).replace("\\frac", "\\dfrac").lower(),
        lambda t: t.replace(",", ",\\,").replace("=", " = ").replace("(", "\\left(").replace(")", "\\right)"),
        lambda t: re.sub(r"(\d)", r"\1\\!", t, count=2).replace(" ", "\\ ", 2) + "  ",
        lambda t: "$" + t.swapcase().replace("  ", " ") + "$",
    ]
    return variants[k % len(variants)](p)


def test_decontamination_drops_planted_benchmark_problems_and_keeps_the_rest(bench_dir, tmp_path):
    planted, near_miss = [], []
    for f in benchmark_files(bench_dir):
        for r in _lines(f):
            p = r.get("problem") or r.get("question")
            planted += [p, _perturb(p, len(planted))]
            if re.search(r"\d", p) and len(near_miss) < 200:
                near_miss.append(re.sub(r"\d", lambda m: str((int(m.group()) + 1) % 10), p, count=1) + " (variant)")
    clean = [r["question"] for r in _lines(bench_dir / "gsm8k/train.jsonl")[:300]] + near_miss
    rows = [{"question": q, "response": "Work. \\boxed{1}", "kind": "bench"} for q in planted]
    rows += [{"question": q, "response": "Work. \\boxed{2}", "kind": "clean"} for q in clean]
    rows = [rows[i] for i in sorted(range(len(rows)), key=lambda i: (i * 7919) % len(rows))]  # interleave
    src = write_jsonl(tmp_path / "train.jsonl", rows)
    out = tmp_path / "out"
    s = convert(
        ConvertConfig(
            out=str(out), source="generic", input=src, decontaminate_dir=str(bench_dir), progress=False, quiet=True
        )
    )
    assert s["dropped"]["train"]["contaminated"] == len(planted)
    assert s["rows_out"]["train"] == len(clean)
    kept = set(pd.read_parquet(out / "rl/train.parquet").extra_info.map(lambda e: e["question"]))
    assert kept == set(clean)
    assert s["decontamination"]["enabled"] and len(s["decontamination"]["files"]) == 7  # every file but gsm8k train


def test_sample_command_writes_both_formats(bench_dir, tmp_path):
    """The command the main job runs, from another cwd, finding the benchmarks through CADFT_BENCHMARKS_DIR."""
    out = tmp_path / "sample"
    env = {**os.environ, "CADFT_BENCHMARKS_DIR": str(bench_dir)}
    r = subprocess.run(
        [sys.executable, "-m", "cadft_verl.data", "sample", "--out", str(out)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    for name in ("sft/train.parquet", "sft/val.parquet", "rl/train.parquet", "rl/val.parquet", "summary.json"):
        assert str(out / name) in r.stdout
    s = read_summary(out)
    assert s["rows_out"] == {"train": 256, "val": 32}
    sft, rl = pd.read_parquet(out / "sft/train.parquet"), pd.read_parquet(out / "rl/train.parquet")
    assert len(sft) == len(rl) == 256 and len(pd.read_parquet(out / "rl/val.parquet")) == 32
    assert sft.extra_info.map(lambda e: e["index"]).is_unique
    assert not os.path.exists(tmp_path / "outputs")  # nothing written elsewhere
