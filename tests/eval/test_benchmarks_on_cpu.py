"""The benchmarks of the one task registry, and their loaders: layouts, field inference, folder lookup, bad input
messages."""

import json
import os

import pytest

from cadft_verl.eval import benchmarks as bm
from cadft_verl.eval.benchmarks import BenchmarkError, expand_benchmark_args, load_benchmark, parse_benchmark_arg
from cadft_verl.math.prompts import TEMPLATES, get_template
from cadft_verl.tasks import BENCHMARKS, PRESETS, TASKS, get_benchmark, get_task


def _write_jsonl(path, rows):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    return str(path)


def test_registry_and_aliases():
    assert set(BENCHMARKS) == {"math500", "aime24", "aime25", "amc23", "minerva_math", "olympiadbench", "gsm8k",
                               "arith"}
    assert set(TASKS) == {*BENCHMARKS, "numina", "openr1", "generic"}  # one registry: benchmarks and corpora
    assert PRESETS["paper"] == ["math500", "minerva_math", "olympiadbench", "aime24", "amc23"]
    assert get_benchmark("MATH-500").name == "math500" and get_benchmark("minerva").name == "minerva_math"
    assert expand_benchmark_args(["paper", "gsm8k,aime25", "x=/p"]) == [*PRESETS["paper"], "gsm8k", "aime25", "x=/p"]
    # the data CLI's sources are the same objects: --source math is the task math500, --source gsm8k the benchmark
    assert get_task("math") is get_benchmark("math500") and get_task("gsm8k") is BENCHMARKS["gsm8k"]
    with pytest.raises(BenchmarkError, match="unknown benchmark 'numina'"):
        get_benchmark("numina")  # a training corpus, not a benchmark


def test_unknown_name_lists_available():
    with pytest.raises(BenchmarkError) as e:
        load_benchmark("math5000")
    msg = str(e.value)
    assert "math5000" in msg and all(n in msg for n in BENCHMARKS)


def test_missing_file_names_the_path(tmp_path):
    missing = tmp_path / "nope" / "test.jsonl"
    with pytest.raises(BenchmarkError, match=str(missing)):
        load_benchmark(f"aime24={missing}")
    with pytest.raises(BenchmarkError, match=str(tmp_path / "empty" / "math" / "test.jsonl")):
        load_benchmark("math500", bdir=str(tmp_path / "empty"))


def test_malformed_line_reports_file_and_line(tmp_path):
    p = tmp_path / "bad.jsonl"
    p.write_text('{"problem": "1+1", "answer": "2"}\n\n{"problem": "2+2", "answer": \n')
    with pytest.raises(BenchmarkError, match=f"{p}:3: malformed JSON"):
        load_benchmark(f"mine={p}")


def test_qwen_layout_folder_and_env(tmp_path, monkeypatch):
    # the Qwen2.5-Math evaluation layout: <dir>/<name>/test.jsonl, found through $CADFT_BENCHMARKS_DIR
    _write_jsonl(tmp_path / "aime24" / "test.jsonl", [{"id": 1, "problem": "p", "answer": "025"}])
    _write_jsonl(tmp_path / "math500" / "test.jsonl", [{"problem": "q", "answer": "\\frac12", "unique_id": "u"}])
    monkeypatch.setenv("CADFT_BENCHMARKS_DIR", str(tmp_path))
    assert bm.benchmarks_dir() == str(tmp_path)
    b = load_benchmark("aime24")
    assert b.problems[0].gold == "025" and b.problems[0].id == "1"
    assert load_benchmark("math500").problems[0].id == "u"
    assert bm.benchmarks_dir("/x/y") == "/x/y"


def test_benchmarks_dir_fallbacks(tmp_path, monkeypatch):
    monkeypatch.delenv("CADFT_BENCHMARKS_DIR", raising=False)
    (tmp_path / "shared" / "benchmarks").mkdir(parents=True)
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    assert bm.benchmarks_dir() == str(tmp_path / "shared" / "benchmarks")  # <cwd>/../shared/benchmarks
    monkeypatch.chdir(tmp_path)
    from cadft_verl.utils.paths import REPO_ROOT

    assert bm.benchmarks_dir() == os.path.abspath(os.path.join(REPO_ROOT, "..", "shared", "benchmarks"))


def test_name_equals_path_and_generic_inference(tmp_path):
    # an unregistered benchmark in the same layout as a registered one works by pointing at its file
    p = _write_jsonl(tmp_path / "olymp2" / "test.jsonl",
                     [{"id": 7, "question": "q?", "final_answer": ["$69$,$84$"], "solution": ["..."]}])
    b = load_benchmark(f"olymp2={p}")
    assert b.name == "olymp2" and b.problems[0].gold == "69,84" and b.problems[0].id == "7"
    assert b.spec.gold_kind == "list"
    # bare path: name from the folder
    assert parse_benchmark_arg(p) == ("olymp2", p)
    b = load_benchmark(p)
    assert b.name == "olymp2"
    # GSM8K-like answers are recognised
    g = _write_jsonl(tmp_path / "g.jsonl", [{"question": "q", "answer": "work <<1+1=2>>\n#### 1,234"}])
    assert load_benchmark(f"gx={g}").problems[0].gold == "1234"
    # Minerva-like (solution only): gold = last boxed
    m = _write_jsonl(tmp_path / "m.jsonl", [{"problem": "q", "solution": "a \\boxed{1} b \\boxed{2 \\mathrm{~m}}"}])
    assert load_benchmark(f"mx={m}").problems[0].gold == "2 \\mathrm{~m}"
    # no usable field -> the fields are listed
    bad = _write_jsonl(tmp_path / "bad.jsonl", [{"text": "q", "label2": 1}])
    with pytest.raises(BenchmarkError, match="question field"):
        load_benchmark(f"bx={bad}")


def test_registered_name_with_other_layout(tmp_path):
    # a registered name pointing at a file with different field names falls back to inference
    p = _write_jsonl(tmp_path / "a.jsonl", [{"Problem": "q", "Answer": 5}])
    b = load_benchmark(f"aime24={p}")
    assert b.name == "aime24" and b.problems[0].gold == "5"


def test_json_array_and_parquet(tmp_path):
    rows = [{"problem": f"p{i}", "answer": float(i), "id": i} for i in range(3)]
    j = tmp_path / "t.json"
    j.write_text(json.dumps({"data": rows}))
    assert [p.gold for p in load_benchmark(f"amc23={j}").problems] == ["0", "1", "2"]
    import pandas as pd

    pq = tmp_path / "t.parquet"
    pd.DataFrame([{"question": "q", "final_answer": ["$x$"]}]).to_parquet(pq)
    assert load_benchmark(f"ob={pq}").problems[0].gold == "x"


def test_limit_and_shared_quirks():
    if not os.path.isdir(bm.benchmarks_dir()):
        pytest.skip("no shared benchmarks")
    amc = load_benchmark("amc23", limit=5)
    assert len(amc) == 5 and amc.problems[0].gold == "27" and amc.problems[0].raw_gold == 27.0
    ob = load_benchmark("olympiadbench", limit=20)
    assert ob.problems[13].gold == "69,84" and "$" not in "".join(p.gold for p in ob.problems)
    assert ob.problems[0].question.startswith("Xenia")  # question field is `question`
    mv = load_benchmark("minerva_math", limit=1)
    assert mv.problems[0].gold == "1.6"
    gs = load_benchmark("gsm8k", limit=1)
    assert gs.problems[0].gold == "18" and gs.problems[0].id == "0"


def test_hub_error_is_clear(monkeypatch):
    import datasets

    def offline(*a, **k):
        raise ConnectionError("no network")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(BenchmarkError, match="hf://HuggingFaceH4/MATH-500@test.*Offline"):
        load_benchmark("math500=hf://HuggingFaceH4/MATH-500")
    with pytest.raises(BenchmarkError, match="hf://openai/gsm8k:main@test"):
        load_benchmark("gsm8k", bdir="/nonexistent", hub_fallback=True)


def test_hub_rows_are_used(monkeypatch):
    import datasets

    seen = {}

    def fake(name, config=None, split=None):
        seen.update(name=name, config=config, split=split)
        return [{"problem": "q", "answer": "42", "id": 0}]

    monkeypatch.setattr(datasets, "load_dataset", fake)
    b = load_benchmark("aime24=hf://HuggingFaceH4/aime_2024")
    assert seen == {"name": "HuggingFaceH4/aime_2024", "config": None, "split": "train"}
    assert b.problems[0].gold == "42" and b.source == "hf://HuggingFaceH4/aime_2024@train"


def test_prompt_templates():
    from cadft_verl.demo.tiny_model import build_tokenizer

    tok = build_tokenizer(["hello"], vocab_size=300)
    q = get_template("qwen-boxed").render("What is {1+1}?", tok)
    assert q == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nWhat is {1+1}?\n"
        "Please reason step by step, and put your final answer within \\boxed{}.<|im_end|>\n<|im_start|>assistant\n"
    )
    assert get_template("chat").render("Q", tok) == "<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n"
    assert get_template("raw-boxed").render("Q").startswith("Q\nPlease reason")
    tok.chat_template = None
    with pytest.raises(ValueError, match="raw-boxed"):
        get_template("qwen-boxed").render("Q", tok)
    with pytest.raises(ValueError, match="available"):
        get_template("nope")
    assert set(TEMPLATES) >= {"qwen-boxed", "chat"}
