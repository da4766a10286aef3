"""End to end on CPU: ``python -m cadft_verl.eval run`` on a tiny model, a scripted-generator run with known
numbers, and ``compare`` (cold-start table)."""

import copy
import json
import os
import subprocess
import sys

import pytest

from cadft_verl.eval.cli import main
from cadft_verl.eval.runner import RunConfig, run_eval

BENCH = ["math500", "amc23"]
N_PROB, K = 4, 2
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _png_ok(path):
    with open(path, "rb") as f:
        assert f.read(8) == PNG_MAGIC
    import matplotlib.image

    img = matplotlib.image.imread(path)
    assert img.shape[0] > 100 and img.shape[1] > 100


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from cadft_verl.demo.tiny_model import build_tiny_model

    return build_tiny_model(str(tmp_path_factory.mktemp("tiny")), ["What is 1+1? \\boxed{2}"])


@pytest.fixture(scope="module")
def cli_run(tiny_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    rc = main(["run", "--model", tiny_model, "--out", str(out), "--benchmarks", *BENCH, "--limit", str(N_PROB),
               "--k", str(K), "--max-new-tokens", "32", "--score-workers", "2", "--label", "tiny-base"])
    assert rc == 0
    return out


def test_cli_run_outputs(cli_run):
    out = cli_run
    for f in ("samples.jsonl", "metrics.json", "metrics.md", "metrics.png"):
        assert (out / f).is_file(), f
    rows = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert len(rows) == len(BENCH) * N_PROB * K
    for b in BENCH:
        assert sum(r["benchmark"] == b for r in rows) == N_PROB * K
    keys = {"benchmark", "problem_id", "sample", "prompt", "response", "extracted_answer", "gold", "correct",
            "no_answer", "timed_out"}
    assert all(keys <= set(r) for r in rows)
    assert rows[0]["prompt"].startswith("<|im_start|>system\nYou are a helpful assistant.")
    assert rows[0]["gold"] == "\\left( 3, \\frac{\\pi}{2} \\right)"

    m = json.loads((out / "metrics.json").read_text())
    st = m["settings"]
    assert st["template"]["name"] == "qwen-boxed" and st["k"] == K and st["temperature"] == 1.0
    assert st["top_p"] == 1.0 and st["max_new_tokens"] == 32 and st["seed"] == 0 and st["backend"] == "hf"
    assert st["model"] == os.path.abspath(st["model"]) and st["label"] == "tiny-base"
    assert set(m["benchmarks"]) == set(BENCH)
    for b in BENCH:
        bm = m["benchmarks"][b]
        assert bm["n_problems"] == N_PROB and bm["k"] == K and bm["n_samples"] == N_PROB * K
        for key in (f"avg@{K}", "pass@1", f"pass@{K}", f"maj@{K}"):
            assert 0.0 <= bm[key]["mean"] <= 1.0 and bm[key]["se"] >= 0.0
        assert 0.0 <= bm["no_answer_rate"] <= 1.0
    assert m["average"]["n_benchmarks"] == 2 and 0.0 <= m["average"][f"avg@{K}"]["mean"] <= 1.0
    md = (out / "metrics.md").read_text()
    assert "| MATH-500 | 4 |" in md and "| AMC23 | 4 |" in md and "Average" in md
    _png_ok(out / "metrics.png")


class ScriptedGenerator:
    """Sample 0 = the gold answer boxed, sample 1 = a wrong answer, sample 2 = no answer."""

    name = "scripted"

    def __init__(self, tokenizer, golds):
        self.tokenizer = tokenizer
        self.golds = golds

    def generate(self, prompts, s, add_special_tokens=False, desc=""):
        outs = []
        for p in prompts:
            gold = self.golds[p]
            outs.append([f"so \\boxed{{{gold}}}", "so \\boxed{-12345}", "I give up"][: s.k])
        return outs


def test_scripted_run_known_numbers(tmp_path, tiny_model):
    from transformers import AutoTokenizer

    from cadft_verl.eval.benchmarks import load_benchmark
    from cadft_verl.math.prompts import get_template

    tok = AutoTokenizer.from_pretrained(tiny_model)
    tmpl = get_template("chat")
    golds = {}
    for b in BENCH:
        for p in load_benchmark(b, limit=N_PROB).problems:
            golds[tmpl.render(p.question, tok)] = p.gold
    cfg = RunConfig(model=tiny_model, out=str(tmp_path), benchmarks=BENCH, limit=N_PROB, template="chat", k=3,
                    score_workers=1, label="scripted")
    m = run_eval(cfg, generator=ScriptedGenerator(tok, golds))
    for b in BENCH:
        bm = m["benchmarks"][b]
        assert bm["avg@3"]["mean"] == pytest.approx(1 / 3) and bm["avg@3"]["se"] == 0.0
        assert bm["pass@1"]["mean"] == pytest.approx(1 / 3)
        assert bm["pass@2"]["mean"] == pytest.approx(2 / 3)
        assert bm["pass@3"]["mean"] == 1.0
        assert bm["headroom@3"]["mean"] == pytest.approx(2 / 3) and "entropy" not in bm  # measures no entropy
        assert bm["maj@3"]["mean"] == pytest.approx(0.5)  # one correct vs one wrong cluster: tie
        assert bm["no_answer_rate"] == pytest.approx(1 / 3) and bm["wrong_answer_rate"] == pytest.approx(1 / 3)
    assert m["settings"]["template"]["name"] == "chat" and m["settings"]["backend"] == "scripted"
    assert m["outputs"]["metrics"] == str(tmp_path / "metrics.json")
    # rescoring the samples (no generation) reproduces the metrics
    assert main(["rescore", "--samples", str(tmp_path), "--out", str(tmp_path / "rescored")]) == 0
    again = json.loads((tmp_path / "rescored" / "metrics.json").read_text())
    for b in BENCH:
        for key in ("avg@3", "pass@1", "pass@2", "pass@3", "maj@3", "no_answer_rate"):
            assert again["benchmarks"][b][key] == m["benchmarks"][b][key], (b, key)
    assert again["settings"]["template"]["name"] == "chat"
    assert len((tmp_path / "rescored" / "samples.jsonl").read_text().splitlines()) == len(BENCH) * N_PROB * 3


def _fake_metrics(src, dst, label, scale):
    m = copy.deepcopy(src)
    m["settings"]["label"] = label
    for b in m["benchmarks"].values():
        for v in b.values():
            if isinstance(v, dict) and "mean" in v:
                v["mean"] = min(1.0, 0.1 * scale + 0.05)
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(json.dumps(m))
    return str(dst)


def test_compare_cold_start_table(cli_run, tmp_path):
    src = json.loads((cli_run / "metrics.json").read_text())
    rows = ["base", "SFT", "DFT", "CADFT"]
    before = [f"{r}={_fake_metrics(src, tmp_path / 'b' / r / 'metrics.json', r, i)}" for i, r in enumerate(rows)]
    after = [f"{r}={_fake_metrics(src, tmp_path / 'a' / r / 'metrics.json', r, i + 2)}" for i, r in enumerate(rows)]
    out = tmp_path / "cmp"
    assert main(["compare", "--before", *before, "--after", *after, "--out", str(out)]) == 0
    md = (out / "cold_start.md").read_text()
    for r in rows:
        assert f"| {r} |" in md
    assert "Before GRPO" in md and "After GRPO" in md and "RL gain" in md and "| MATH-500 | AMC23 | Average |" in md
    table = json.loads((out / "cold_start.json").read_text())
    assert [r["label"] for r in table["rows"]] == rows and table["benchmarks"] == BENCH
    for i, r in enumerate(table["rows"]):
        assert r["before"]["average"] == pytest.approx(0.1 * i + 0.05)
        assert r["after"]["average"] == pytest.approx(0.1 * (i + 2) + 0.05)
        assert r["gain"]["average"] == pytest.approx(0.2) and r["gain"]["math500"] == pytest.approx(0.2)
    assert "+20.00" in md
    _png_ok(out / "cold_start.png")
    # before only (plain comparison of models), bad inputs
    assert main(["compare", "--before", *before[:2], "--out", str(tmp_path / "c2")]) == 0
    assert main(["compare", "--before", before[0], "--after", "zzz=" + after[0].split("=", 1)[1],
                 "--out", str(tmp_path / "c3")]) == 2
    assert main(["compare", "--before", "base=/nonexistent/metrics.json", "--out", str(tmp_path / "c4")]) == 2


def test_cli_bad_input_messages(tmp_path, capsys):
    assert main(["run", "--model", "m", "--out", str(tmp_path), "--benchmarks", "math5000"]) == 2
    err = capsys.readouterr().err
    assert "unknown benchmark 'math5000'" in err and "olympiadbench" in err
    assert main(["run", "--model", "m", "--out", str(tmp_path), "--benchmarks", f"x={tmp_path}/no.jsonl"]) == 2
    assert f"{tmp_path}/no.jsonl" in capsys.readouterr().err
    # sampling settings, refused before the model is looked for (there is no model "m")
    for args, message in ((["--k", "0"], "error: --k must be >= 1 (samples per problem), got 0"),
                          (["--temperature", "-1"], "error: --temperature must be >= 0, got -1.0"),
                          (["--k", "4", "--plot-metric", "pass@8"],
                           "error: --plot-metric: pass@8 needs at least 8 samples per problem, but k is 4")):
        assert main(["run", "--model", "m", "--out", str(tmp_path), "--benchmarks", "gsm8k", *args]) == 2
        assert message in capsys.readouterr().err


def test_thin_scripts_help():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    for script, word in (("eval/run_eval.py", "--model"), ("eval/compare.py", "--before")):
        r = subprocess.run([sys.executable, os.path.join(root, script), "--help"], capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 0 and word in r.stdout
