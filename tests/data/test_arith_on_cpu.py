"""The embedded arithmetic task: seeded, held-out problems never trained on, demonstration kinds as recorded, both of
verl's formats, the benchmark that needs no file; and the cached base model's tokenizer as every loader sees it."""

import json
import re

import pandas as pd
import pytest

from cadft_verl.tasks import arith


def _final(row):
    return row["answer"].rsplit("#### ", 1)[1]


def test_rows_are_seeded_and_held_out_problems_are_never_trained_on():
    assert arith.train_rows(64, seed=3) == arith.train_rows(64, seed=3)
    assert arith.train_rows(64, seed=3) != arith.train_rows(64, seed=4)
    test = arith.test_rows()
    assert len(test) == arith.TEST_SIZE and {r["steps"] for r in test} == {1, 2, 3}

    def keys(rows):  # the numbers and operations of each question, whatever the wording
        return {tuple(re.findall(r"\d+|gives|loses|uses|buys|finds|gets", r["question"])) for r in rows}

    trained = keys(arith.train_rows(2000, seed=0)) | keys(arith.pretrain_rows(3000, seed=0))
    assert not keys(test) & trained


def test_each_demonstration_kind_is_what_its_row_says():
    rows = arith.train_rows(400, seed=0)
    counts = {k: sum(r["kind"] == k for r in rows) for k in arith.KINDS}
    assert counts == {k: round(400 * arith.DEFAULT_MIX[k]) for k in arith.KINDS}
    for r in rows:
        body, answer = r["answer"].rsplit("\n#### ", 1)
        lines = body.split("\n")
        steps = [re.fullmatch(r"(\d+) ([+-]) (\d+) = (-?\d+)", line) for line in lines]

        def right(m):
            a, op, b, c = int(m[1]), m[2], int(m[3]), int(m[4])
            return (a + b if op == "+" else a - b) == c

        if r["kind"] == "clean":  # every step right, the last result is the answer
            assert all(steps) and all(map(right, steps)) and steps[-1][4] == answer
        elif r["kind"] == "wrong_step":  # exactly one step wrong, the final answer right
            assert all(steps) and sum(not right(m) for m in steps) == 1 and answer == _final(r)
        elif r["kind"] == "style":
            assert not re.search(r"\d", body) and "So " in body
        else:
            assert body == f"The answer is {answer}."
    assert all(0 <= int(_final(r)) < arith.LIMIT for r in rows)
    with pytest.raises(ValueError, match="unknown demonstration kind"):
        arith.random_problem(__import__("random").Random(0), 2).solution("typo")


def test_make_arith_writes_both_formats_with_the_kind_in_extra_info(tmp_path, monkeypatch):
    from cadft_verl.data.sample import make_arith

    monkeypatch.setenv("CADFT_BENCHMARKS_DIR", str(tmp_path / "none"))  # no benchmark folder is needed
    summary = make_arith(out=str(tmp_path), sft_size=40, rl_size=16, val_size=8, quiet=True)
    sft = pd.read_parquet(tmp_path / "sft" / "train.parquet")
    assert len(sft) == 40 and sum(summary["kinds"].values()) == 40
    kinds = [e["kind"] for e in sft["extra_info"]]
    assert {k: kinds.count(k) for k in arith.KINDS} == summary["kinds"]
    assert sft["messages"][0][-1]["content"].endswith("\\boxed{" + sft["extra_info"][0]["ground_truth"] + "}")
    rl = pd.read_parquet(tmp_path / "rl" / "train.parquet")
    val = pd.read_parquet(tmp_path / "rl" / "val.parquet")
    assert len(rl) == 16 and len(val) == 8 and "kind" not in rl["extra_info"][0]
    held_out = arith.test_rows()[:8]
    assert [v["ground_truth"] for v in val["reward_model"]] == [_final(r) for r in held_out]
    assert len(pd.read_parquet(tmp_path / "sft" / "val.parquet")) == 8
    assert json.loads((tmp_path / "summary.json").read_text())["task"] == "arith"
    # its two conversions are one conversion of the folder: a rerun without validation rows leaves no val file
    assert summary["files"] == ["raw/rl.jsonl", "raw/sft.jsonl", "raw/val.jsonl", "rl/train.parquet",
                                "rl/val.parquet", "sft/train.parquet", "sft/val.parquet"]
    make_arith(out=str(tmp_path), sft_size=40, rl_size=16, val_size=0, quiet=True)
    assert not (tmp_path / "sft" / "val.parquet").exists() and not (tmp_path / "rl" / "val.parquet").exists()


def test_the_arith_benchmark_needs_no_file(tmp_path):
    from cadft_verl.eval.benchmarks import load_benchmark

    bench = load_benchmark("arith", bdir=str(tmp_path))  # an empty folder: nothing is read from disk
    assert len(bench) == arith.TEST_SIZE and bench.display == "Arith"
    assert [p.gold for p in bench.problems] == [_final(r) for r in arith.test_rows()]


def test_base_model_is_cached_and_its_tokenizer_encodes_the_same_in_every_loader(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from cadft_verl.demo.pretrain import PretrainConfig, pretrained_base

    cfg = PretrainConfig(rows=64, steps=3, batch_size=8)
    out = pretrained_base(str(tmp_path / "base"), cfg, log=lambda *_: None)
    record = json.loads((tmp_path / "base" / "pretrain.json").read_text())
    assert record["config"]["steps"] == 3 and record["seconds"] > 0
    mtime = (tmp_path / "base" / "pretrain.json").stat().st_mtime
    assert pretrained_base(out, cfg) == out and (tmp_path / "base" / "pretrain.json").stat().st_mtime == mtime
    with pytest.raises(FileExistsError, match="holds no base model of these settings"):
        pretrained_base(out, PretrainConfig(rows=64, steps=4, batch_size=8))
    # AutoTokenizer (verl, vLLM, evaluation) loads the folder as a Qwen2 tokenizer: the same ids as training's
    tok = AutoTokenizer.from_pretrained(out)
    text = arith.train_rows(1)[0]["question"]
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == text and len(ids) < len(text) / 2  # merges were learned and are applied
    AutoModelForCausalLM.from_pretrained(out)


def test_the_base_boxes_its_answer_for_half_the_items_and_rarely_for_the_rest():
    """The base's pretraining text gives the requested \\boxed{} answer for the first items only (and one in five of
    the others): the format gap a short SFT closes. Rows about the other items end "The answer is N.", which the
    reward scores as no answer."""
    from cadft_verl.math.extract import extract_final_answer
    from cadft_verl.math.prompts import DEFAULT_TEMPLATE, get_template
    from cadft_verl.demo.pretrain import PretrainConfig, _encode, boxes_answer
    from cadft_verl.demo.tiny_model import build_tokenizer

    cfg = PretrainConfig()
    rows = arith.pretrain_rows(2000)
    first = [r for r in rows if r["item"] in arith.ITEMS[: cfg.boxed_items]]
    other = [r for r in rows if r["item"] not in arith.ITEMS[: cfg.boxed_items]]
    assert all(boxes_answer(r, cfg) for r in first) and len(first) > 800
    share = sum(boxes_answer(r, cfg) for r in other) / len(other)
    assert abs(share - cfg.other_boxed) < 0.04, share
    tok = build_tokenizer([r["question"] + "\n" + r["answer"] for r in rows[:200]], vocab_size=400)
    row, template = next(r for r in other if not boxes_answer(r, cfg)), get_template(DEFAULT_TEMPLATE)
    text = tok.decode(_encode(tok, template, row, boxed=False)[1])
    assert text.endswith(f"The answer is {_final(row)}.{tok.eos_token}\n") and extract_final_answer(text) is None
    assert extract_final_answer(tok.decode(_encode(tok, template, row, boxed=True)[1])) == _final(row)


def test_pretraining_rows_give_the_longest_problems_the_share_asked_for():
    """``long_share`` (PretrainConfig.long_share): a base shown a few three-step problems among its one- and two-step
    ones (docs/cpu-default.md measures such bases); without it every step count is equally likely."""
    def steps(rows):
        return [r["steps"] for r in rows]

    few = steps(arith.pretrain_rows(4000, max_steps=3, long_share=0.05))
    assert abs(few.count(3) / len(few) - 0.05) < 0.015 and set(few) == {1, 2, 3}
    assert abs(few.count(1) - few.count(2)) < 0.1 * len(few)
    even = steps(arith.pretrain_rows(3000, max_steps=3))
    assert all(abs(even.count(k) / len(even) - 1 / 3) < 0.04 for k in (1, 2, 3))
    with pytest.raises(ValueError, match="long_share"):
        arith.pretrain_rows(10, max_steps=1, long_share=0.5)
    with pytest.raises(ValueError, match="long_share"):
        arith.pretrain_rows(10, max_steps=3, long_share=1.5)
