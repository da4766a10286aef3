"""Decontamination that survives rewording: planted benchmark problems (prefix, suffix, prompt template, one word
changed) are dropped through the data CLI and each drop names the benchmark file, the problem id and the overlapping
span; clean GSM8K train rows are kept (false positives counted by the CLI's summary); bad benchmark files and bad
options are named."""

from __future__ import annotations

import json

import pytest
from data_test_utils import plant, read_summary, write_jsonl

from cadft_verl.data.cli import main
from cadft_verl.data.decontaminate import Decontaminator

FORMS = ("prefix", "suffix", "template", "one_word_changed")


def _lines(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


@pytest.fixture(scope="module")
def planted_run(bench_dir, tmp_path_factory):
    """Every 10th MATH-500 and every 25th GSM8K test problem in each reworded form, plus 400 clean GSM8K train
    rows, converted with the data CLI's defaults."""
    tmp = tmp_path_factory.mktemp("decon")
    planted = []
    for rel, step, id_of in (("math/test.jsonl", 10, lambda r, i: r["unique_id"]),
                             ("gsm8k/test.jsonl", 25, lambda r, i: str(i))):
        for i, r in enumerate(_lines(bench_dir / rel)):
            if i % step:
                continue
            q = r.get("problem") or r["question"]
            for k, form in enumerate(FORMS):
                planted.append({"question": plant(q, form, seed=i + k), "response": "Work. \\boxed{1}",
                                "file": rel, "id": id_of(r, i), "form": form})
    clean = [{"question": r["question"], "response": "Work. \\boxed{2}", "file": None}
             for r in _lines(bench_dir / "gsm8k/train.jsonl")[:400]]
    rows = planted + clean
    rows = [rows[i] for i in sorted(range(len(rows)), key=lambda i: (i * 7919) % len(rows))]  # interleave
    src = write_jsonl(tmp / "train.jsonl", rows)
    out = tmp / "out"
    exact_out = tmp / "exact"

    def argv(o):
        return ["convert", "--source", "generic", "--input", src, "--out", str(o),
                "--decontaminate-dir", str(bench_dir), "--no-progress", "--quiet"]

    assert main(argv(out)) == 0
    assert main([*argv(exact_out), "--decontaminate-ngram", "0"]) == 0
    return {"rows": rows, "src": src, "planted": planted, "clean": clean,
            "summary": read_summary(out), "exact": read_summary(exact_out)}


def test_reworded_benchmark_problems_are_dropped_and_clean_rows_kept(planted_run):
    s, planted, clean = planted_run["summary"], planted_run["planted"], planted_run["clean"]
    assert len(planted) == 4 * (50 + 53)
    d = s["decontamination"]
    assert d["ngram"] == 8 and d["threshold"] == 0.5
    assert s["dropped"]["train"]["contaminated"] == len(planted)
    assert s["rows_out"]["train"] == len(clean)  # 0 of the 400 clean rows dropped
    assert sum(d["dropped_by_match"].values()) == len(planted)


def test_each_drop_names_file_id_and_span(planted_run, bench_dir):
    rows = planted_run["rows"]
    d = planted_run["summary"]["decontamination"]
    assert len(d["dropped"]) == len(planted_run["planted"])
    for rec in d["dropped"]:
        line = int(rec["location"].rsplit(":", 1)[1])
        row = rows[line - 1]
        assert rec["file"] == str(bench_dir / row["file"]), rec
        assert rec["id"] == row["id"], rec
        assert rec["match"] in ("exact", "ngram") and 0.5 <= rec["coverage"] <= 1.0
        assert len(rec["span"].split()) >= 4
    by_form = {}
    for rec in d["dropped"]:
        by_form.setdefault(rows[int(rec["location"].rsplit(":", 1)[1]) - 1]["form"], set()).add(rec["match"])
    assert by_form["one_word_changed"] == {"ngram"}


def test_exact_match_alone_misses_the_reworded_forms(planted_run):
    """The same input with --decontaminate-ngram 0 (exact / normalised match only, the old behaviour)."""
    e = planted_run["exact"]
    assert e["decontamination"]["dropped_by_match"]["ngram"] == 0
    assert e["dropped"].get("train", {}).get("contaminated", 0) < len(planted_run["planted"]) // 4


def test_no_false_positive_on_all_of_gsm8k_train(bench_dir, tmp_path):
    """All 7,473 GSM8K train rows through the data CLI, decontaminated against the seven test files: the summary's
    contaminated count is the false-positive count."""
    out = tmp_path / "g"
    assert main(["convert", "--source", "gsm8k", "--input", str(bench_dir / "gsm8k/train.jsonl"), "--out", str(out),
                 "--formats", "rl", "--decontaminate-dir", str(bench_dir), "--no-progress", "--quiet"]) == 0
    s = read_summary(out)
    d = s["decontamination"]
    assert d["enabled"] and d["ngram"] > 0 and len(d["files"]) == 7
    assert d["dropped_by_match"] == {"exact": 0, "ngram": 0} and d["dropped"] == []
    assert s["rows_out"]["train"] == 7473


def test_changed_number_is_another_problem():
    q = "A bag has 12 red and 7 blue marbles. Tom takes 3 red marbles out of the bag. How many marbles are left?"
    d = Decontaminator([q])
    assert d.find("Question: " + q + " Answer with a number.").match == "ngram"
    assert d.find(q.replace("12", "13")) is None
    assert d.find("Compute the value of 12 + 7 + 3.") is None


def test_unusable_benchmark_file_is_named(tmp_path, capsys):
    bdir = tmp_path / "bench"
    bdir.mkdir()
    bad = write_jsonl(bdir / "mine.jsonl", ['{"text": "q"}', "not json", '{"text": 2}'])
    src = write_jsonl(tmp_path / "t.jsonl", [{"question": "What is 1+1?", "response": "\\boxed{2}"}])
    rc = main(["convert", "--source", "generic", "--input", src, "--out", str(tmp_path / "o"),
               "--decontaminate-dir", str(bdir), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and f"{bad}: no usable row" in err and f"{bad}:2: malformed JSON line" in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("opt,value,needle", [("--decontaminate-threshold", "1.5", "(0, 1]"),
                                              ("--decontaminate-ngram", "-1", ">= 0")])
def test_bad_decontamination_option(tmp_path, capsys, bench_dir, opt, value, needle):
    src = write_jsonl(tmp_path / "t.jsonl", [{"question": "What is 1+1?", "response": "\\boxed{2}"}])
    rc = main(["convert", "--source", "generic", "--input", src, "--out", str(tmp_path / "o"),
               "--decontaminate-dir", str(bench_dir), "--no-progress", opt, value])
    err = capsys.readouterr().err
    assert rc == 2 and opt in err and needle in err
