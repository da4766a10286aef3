"""Conversion options and error handling on small synthetic files (no benchmark folder needed)."""

from __future__ import annotations

import json
import os

import pandas as pd
import pytest
from data_test_utils import read_summary, write_jsonl

from cadft_verl.data.cli import main
from cadft_verl.data.convert import ConvertConfig, DataError, chat_lengths, convert
from cadft_verl.data.sample import make_arith
from cadft_verl.data.writer import AtomicOutputs
from cadft_verl.math.ngrams import normalize_problem
from cadft_verl.tasks.gsm8k import gsm8k_response


def _cfg(src, out, **kw):
    return ConvertConfig(
        out=str(out),
        input=str(src),
        source=kw.pop("source", "generic"),
        decontaminate=False,
        progress=False,
        quiet=True,
        **kw,
    )


def _rows(n, start=0):
    return [
        {"question": f"What is {i} + {i}?", "response": f"{i} + {i} = {2 * i}. \\boxed{{{2 * i}}}"}
        for i in range(start, start + n)
    ]


def _idx(path):
    return [e["index"] for e in pd.read_parquet(path).extra_info]


BAD_LINES = [
    {"question": "good one", "response": "so \\boxed{1}"},  # line 1
    '{"question": "broken", "response": ',  # line 2: malformed JSON
    {"prompt": "wrong field", "response": "\\boxed{3}"},  # line 3: no question field
    {"question": "no demonstration", "response": "   "},  # line 4: empty response
    {"question": "no answer anywhere", "response": "it is three"},  # line 5: no extractable answer
    {"question": "good two", "response": "work", "answer": "$\\frac12$"},  # line 6
]


def test_bad_rows_are_skipped_and_counted_with_file_and_line(tmp_path, capsys):
    src = write_jsonl(tmp_path / "bad.jsonl", BAD_LINES)
    rc = main(
        [
            "convert",
            "--source",
            "generic",
            "--input",
            src,
            "--out",
            str(tmp_path / "o"),
            "--no-decontaminate",
            "--no-progress",
        ]
    )
    assert rc == 0
    err = capsys.readouterr().err
    for line, reason in ((2, "malformed_json"), (3, "missing_field"), (4, "empty_response"), (5, "no_answer")):
        assert f"{src}:{line}:" in err and f"[{reason}]" in err
    s = read_summary(tmp_path / "o")
    assert s["rows_in"] == {"train": 6} and s["rows_out"]["train"] == 2
    assert s["dropped"]["train"] == {"malformed_json": 1, "missing_field": 1, "empty_response": 1, "no_answer": 1}
    assert s["dropped_examples"]["missing_field"][0].startswith(f"{src}:3: no question field 'question'")
    rl = pd.read_parquet(tmp_path / "o/rl/train.parquet")
    assert [r["ground_truth"] for r in rl.reward_model] == ["1", "\\frac12"]
    # the answer-field row had no \boxed{} in its demonstration: a final boxed line is added
    sft = pd.read_parquet(tmp_path / "o/sft/train.parquet")
    assert sft.messages[1][-1]["content"] == "work\n\\boxed{\\frac12}"
    assert _idx(tmp_path / "o/sft/train.parquet") == [0, 5]  # stable: position in the input


@pytest.mark.parametrize("bad_line,name", [(2, "malformed"), (3, "missing field"), (4, "empty response")])
def test_strict_stops_at_the_first_bad_row_and_writes_nothing(tmp_path, capsys, bad_line, name):
    rows = BAD_LINES[:1] + BAD_LINES[bad_line - 1 : bad_line] + BAD_LINES[5:]
    src = write_jsonl(tmp_path / "bad.jsonl", rows)
    out = tmp_path / "o"
    rc = main(["convert", "--source", "generic", "--input", src, "--out", str(out), "--strict", "--no-decontaminate"])
    assert rc == 2
    assert f"error: {src}:2:" in capsys.readouterr().err
    assert not out.exists() or not any(p.is_file() for p in out.rglob("*"))


def test_failed_run_keeps_previous_outputs_and_leaves_no_temporary_files(tmp_path, monkeypatch):
    out = tmp_path / "o"
    convert(_cfg(write_jsonl(tmp_path / "a.jsonl", _rows(5)), out))
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}

    # 1. a --strict failure while reading
    src = write_jsonl(tmp_path / "b.jsonl", _rows(3) + ["{not json"])
    with pytest.raises(DataError, match=r"b\.jsonl:4:"):
        convert(_cfg(src, out, strict=True))
    # 2. a crash while writing, after some parquet files are already written
    monkeypatch.setattr(AtomicOutputs, "json", lambda self, path, obj: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError):
        convert(_cfg(write_jsonl(tmp_path / "c.jsonl", _rows(7)), out))
    after = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before  # no half-converted file, no .tmp leftovers


def _files(out):
    return sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())


def test_a_rerun_owns_the_folder_and_leaves_no_stale_file(tmp_path):
    """A rerun into the same --out removes what the previous conversion wrote and it does not: OUT/sft/train.parquet
    cannot be an older conversion's while summary.json describes a newer one."""
    src = write_jsonl(tmp_path / "a.jsonl", _rows(10))
    out = tmp_path / "o"
    convert(_cfg(src, out, val_size=2))
    assert _files(out) == ["rl/train.parquet", "rl/val.parquet", "sft/train.parquet", "sft/val.parquet",
                           "summary.json"]
    (out / "notes.txt").write_text("mine")  # a file no conversion wrote is never touched
    s = convert(_cfg(src, out, formats=("rl",)))
    assert _files(out) == ["notes.txt", "rl/train.parquet", "summary.json"] and not (out / "sft").exists()
    assert s["files"] == read_summary(out)["files"] == ["rl/train.parquet"] and list(s["outputs"]) == ["rl_train"]
    # a folder converted before summaries recorded their files: the files a conversion writes count as recorded
    convert(_cfg(src, out, val_size=2))
    summary = read_summary(out)
    del summary["files"]
    (out / "summary.json").write_text(json.dumps(summary))
    convert(_cfg(src, out, formats=("sft",)))
    assert _files(out) == ["notes.txt", "sft/train.parquet", "summary.json"]


def test_an_out_that_is_a_file_is_refused_with_a_clear_error(tmp_path, capsys):
    src = write_jsonl(tmp_path / "a.jsonl", _rows(3))
    taken = tmp_path / "taken.txt"
    taken.write_text("not a folder")
    for out, says in ((taken, "is a file"), (taken / "sub", f"lies below the file {taken}")):
        rc = main(["convert", "--source", "generic", "--input", src, "--out", str(out), "--no-decontaminate"])
        assert rc == 2 and f"error: --out {out}: {says}; name a folder" in capsys.readouterr().err
    with pytest.raises(DataError, match="is a file"):
        make_arith(out=str(taken), sft_size=4, rl_size=4, val_size=0, quiet=True)
    assert taken.read_text() == "not a folder"


def test_dedup_on_normalised_problem(tmp_path):
    rows = _rows(4) + [
        {"question": "  WHAT is 1 +  1?\n", "response": "\\boxed{2}"},
        {"question": "What is $1$ + 1?", "response": "\\boxed{2}"},
        {"question": "What is 1 + 1 ?", "response": "\\boxed{2}"},
    ]
    src = write_jsonl(tmp_path / "d.jsonl", rows)
    s = convert(_cfg(src, tmp_path / "o"))
    assert s["rows_out"]["train"] == 4 and s["dropped"]["train"] == {"duplicate": 3}
    assert _idx(tmp_path / "o/rl/train.parquet") == [0, 1, 2, 3]
    assert convert(_cfg(src, tmp_path / "o2", dedup=False))["rows_out"]["train"] == 7


def test_normalisation_covers_latex_spacing():
    a = r"Find $x$ if $\dfrac{1}{2}\,x = 3\!$ and \left( y \right)\ is~big."
    assert normalize_problem(a) == normalize_problem(r"find x IF \frac{1}{2}x=3 and (y) is big.")
    assert normalize_problem("What is 2+2?") != normalize_problem("What is 2+3?")


def test_limit_seed_and_val_size(tmp_path):
    src = write_jsonl(tmp_path / "n.jsonl", _rows(100))
    s = convert(_cfg(src, tmp_path / "lim", limit=10))
    assert s["rows_in"] == {"train": 10} and _idx(tmp_path / "lim/sft/train.parquet") == list(range(10))

    def run(name, **kw):
        s = convert(_cfg(src, tmp_path / name, **kw))
        val = _idx(tmp_path / name / "sft/val.parquet") if s["rows_out"]["val"] else []
        return s, _idx(tmp_path / name / "sft/train.parquet"), val

    _, a, _ = run("s1", shuffle=True, seed=1, limit=20)
    _, b, _ = run("s1b", shuffle=True, seed=1, limit=20)
    _, c, _ = run("s2", shuffle=True, seed=2, limit=20)
    assert a == b and a != c and len(set(a)) == 20 and a != sorted(a)

    s, tr, va = run("v1", val_size=0.2)
    assert s["rows_out"] == {"train": 80, "val": 20} and not set(tr) & set(va) and sorted(tr + va) == list(range(100))
    s, tr2, va2 = run("v2", val_size=0.2)
    assert (tr2, va2) == (tr, va)  # deterministic
    s, tr3, va3 = run("v3", val_size=3, seed=5)
    assert len(va3) == 3 and va3 != va[:3] and len(tr3) == 97
    rl_val = pd.read_parquet(tmp_path / "v3/rl/val.parquet")
    assert _idx(tmp_path / "v3/rl/val.parquet") == va3 and set(e["split"] for e in rl_val.extra_info) == {"val"}
    with pytest.raises(DataError, match="either --val-input"):
        convert(_cfg(src, tmp_path / "x", val_size=3, val_input=src))
    with pytest.raises(DataError, match="no training rows"):
        convert(_cfg(src, tmp_path / "x", val_size=100))


def test_val_input_rows_are_removed_from_train(tmp_path):
    train = write_jsonl(tmp_path / "t.jsonl", _rows(10))
    val = write_jsonl(tmp_path / "v.jsonl", _rows(3, start=8))
    s = convert(_cfg(train, tmp_path / "o", val_input=val))
    assert s["rows_out"] == {"train": 8, "val": 3} and s["dropped"]["train"] == {"val_overlap": 2}


def test_templates(tmp_path):
    src = write_jsonl(tmp_path / "t.jsonl", _rows(2))
    convert(_cfg(src, tmp_path / "q"))
    convert(_cfg(src, tmp_path / "p", template="plain"))
    q = pd.read_parquet(tmp_path / "q/rl/train.parquet").prompt[0]
    assert [m["role"] for m in q] == ["system", "user"] and q[0]["content"] == "You are a helpful assistant."
    assert q[1]["content"] == "What is 0 + 0?\nPlease reason step by step, and put your final answer within \\boxed{}."
    p = pd.read_parquet(tmp_path / "p/sft/train.parquet").messages[1]
    assert [(m["role"], m["content"]) for m in p][0] == ("user", "What is 1 + 1?") and len(p) == 2


def test_source_specific_fields(tmp_path):
    numina = [
        {
            "source": "olympiads",
            "problem": "P1",
            "solution": "S so $\\boxed{7}$",
            "messages": [{"role": "user", "content": "P1"}, {"role": "assistant", "content": "S so $\\boxed{7}$"}],
        },
        {
            "source": "amc",
            "problem": "P2",
            "solution": "",
            "messages": [{"role": "user", "content": "P2"}, {"role": "assistant", "content": "M \\boxed{8}"}],
        },
    ]
    s = convert(_cfg(write_jsonl(tmp_path / "n.jsonl", numina), tmp_path / "n", source="numina"))
    rl = pd.read_parquet(tmp_path / "n/rl/train.parquet")
    assert s["rows_out"]["train"] == 2 and [r["ground_truth"] for r in rl.reward_model] == ["7", "8"]

    openr1 = [
        {
            "problem": "Q",
            "solution": "short \\boxed{5}",
            "answer": "5",
            "generations": ["<think>a</think> wrong \\boxed{4}", "<think>b</think> right \\boxed{5}"],
            "correctness_math_verify": [False, True],
            "is_reasoning_complete": [True, True],
            "messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "msg \\boxed{5}"}],
        },
        {
            "problem": "R",
            "solution": "",
            "answer": "proof",
            "generations": ["<think>c</think> done"],
            "correctness_math_verify": [True],
            "messages": [],
        },
    ]
    s = convert(_cfg(write_jsonl(tmp_path / "r.jsonl", openr1), tmp_path / "r", source="openr1"))
    assert s["rows_out"]["train"] == 1 and s["dropped"]["train"] == {"no_answer": 1}
    msgs = pd.read_parquet(tmp_path / "r/sft/train.parquet").messages[0]
    assert msgs[-1]["content"] == "<think>b</think> right \\boxed{5}"

    gsm = [{"question": "Q?", "answer": "A has 2*3=<<2*3=6>>6 apples.\nSo 6+1,000=<<6+1000=1006>>1,006.\n#### 1,006"}]
    convert(_cfg(write_jsonl(tmp_path / "g.jsonl", gsm), tmp_path / "g", source="gsm8k"))
    msgs = pd.read_parquet(tmp_path / "g/sft/train.parquet").messages[0]
    assert msgs[-1]["content"] == "A has 2*3=6 apples.\nSo 6+1,000=1,006.\n\\boxed{1006}"
    assert gsm8k_response("x <<1+1=2>>2\n#### 2", "2") == "x 2\n\\boxed{2}"

    # parquet input, user-named fields, RL only: no response needed
    pq = tmp_path / "u.parquet"
    pd.DataFrame({"q": ["A?", "B?"], "gold": [3, 2.0]}).to_parquet(pq)
    s = convert(_cfg(pq, tmp_path / "u", question_field="q", answer_field="gold", formats=("rl",)))
    assert s["rows_out"]["train"] == 2 and sorted(os.listdir(tmp_path / "u")) == ["rl", "summary.json"]
    assert [r["ground_truth"] for r in pd.read_parquet(tmp_path / "u/rl/train.parquet").reward_model] == ["3", "2"]


def test_max_length_filter_uses_the_chat_template(tmp_path):
    from cadft_verl.demo.tiny_model import build_tokenizer

    rows = _rows(5) + [{"question": "long " * 200, "response": "x " * 300 + "\\boxed{1}"}]
    src = write_jsonl(tmp_path / "m.jsonl", rows)
    tok = build_tokenizer([r["question"] + r["response"] for r in rows])
    tok.save_pretrained(tmp_path / "tok")
    with pytest.raises(DataError, match="--tokenizer"):
        convert(_cfg(src, tmp_path / "o", max_length=100))
    s = convert(_cfg(src, tmp_path / "o", max_length=300, tokenizer=str(tmp_path / "tok")))
    assert s["rows_out"]["train"] == 5 and s["dropped"]["train"] == {"too_long": 1}
    sft = pd.read_parquet(tmp_path / "o/sft/train.parquet")
    lens = chat_lengths(tok, [list(m) for m in sft.messages])
    assert max(lens) <= 300 and min(lens) > 30  # system + user + assistant all counted


def test_missing_file_and_offline_hub_give_clear_errors(tmp_path, monkeypatch, capsys):
    import datasets

    with pytest.raises(DataError, match="no such file"):
        convert(_cfg(tmp_path / "nope.jsonl", tmp_path / "o"))

    def offline(*a, **k):
        raise ConnectionError("Couldn't reach 'AI-MO/NuminaMath-CoT' on the Hub (LocalEntryNotFoundError)")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    rc = main(["convert", "--source", "numina", "--out", str(tmp_path / "o"), "--no-decontaminate"])
    err = capsys.readouterr().err
    assert rc == 2 and "cannot load hf://AI-MO/NuminaMath-CoT@train" in err and "offline" in err and "local" in err


def test_hub_names_go_through_datasets_load_dataset(tmp_path, monkeypatch):
    import datasets

    calls = []

    def fake_load(name, config=None, split=None):
        calls.append((name, config, split))
        qs = {"train": ["A?", "B?"], "test": ["C?"]}[split]
        return datasets.Dataset.from_list(
            [{"question": q, "answer": f"w <<1=1>>1\n#### {i}"} for i, q in enumerate(qs)]
        )

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    s = convert(
        ConvertConfig(
            out=str(tmp_path / "o"),
            source="gsm8k",
            val_input="openai/gsm8k",
            decontaminate=False,
            progress=False,
            quiet=True,
        )
    )
    assert calls == [("openai/gsm8k", "main", "test"), ("openai/gsm8k", "main", "train")]
    assert s["rows_out"] == {"train": 2, "val": 1}
    assert pd.read_parquet(tmp_path / "o/rl/train.parquet").extra_info[1]["location"] == "hf://openai/gsm8k:main@train:row 1"
