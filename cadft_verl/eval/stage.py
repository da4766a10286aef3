"""The ``eval`` stage of the one launch: the base model, stage 1's HF export and stage 2's final checkpoint on the
configured benchmarks, and the run's cold-start report.

Configured by the ``eval:`` block of ``recipes/main.yaml`` (docs/eval.md). Outputs, below ``<run dir>/eval/``:

- ``<label>/`` per model (``base``, ``stage1``, ``stage2``): ``python -m cadft_verl.eval run``'s outputs
  (``samples.jsonl``, ``metrics.json``/``.md``/``.png``) and ``eval_key.json`` (the model's fingerprint and the eval
  settings). A rerun skips a model whose ``metrics.json`` exists and whose key is unchanged;
- ``cold_start.md`` / ``.png`` / ``.json``: one row per model (base, warm start, RL), one column per benchmark plus
  the average, and each model's gain over the base model.

Generation runs in the launch's own process with transformers (``backend: hf``, the CPU's), or, with vLLM, in one
fresh process per model so that each model's GPU memory is freed before the next one loads.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, fields

from omegaconf import OmegaConf

from cadft_verl.eval.model_path import ModelPathError, is_hf_model, model_fingerprint, resolve_model

MODELS = ("base", "stage1", "stage2")
#: the report's name of an RL stage by verl's algorithm.adv_estimator (GAE advantages with a critic: PPO)
ALGORITHM_NAMES = {"gae": "ppo"}
EVAL_DIR = "eval"
REPORT = "cold_start"
BACKENDS = ("auto", "hf", "vllm")
# eval-block keys passed to RunConfig under the same name
_RUN_KEYS = ("limit", "k", "greedy", "temperature", "top_p", "max_new_tokens", "template", "backend", "batch_size",
             "benchmarks_dir", "hub", "seed", "dtype", "tensor_parallel_size", "gpu_memory_utilization",
             "max_model_len", "score_timeout", "score_workers")


def _block(config) -> dict:
    ev = config.get("eval")
    if ev is None:
        raise ValueError("eval: the stages include eval but the config has no eval block (recipes/main.yaml)")
    return OmegaConf.to_container(ev, resolve=True) if not isinstance(ev, dict) else dict(ev)


def _args(value) -> list[str]:
    from cadft_verl.eval.benchmarks import expand_benchmark_args

    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    return expand_benchmark_args([str(v) for v in value])


# ------------------------------------------------------------------------------------------------ input checks
def _check_benchmark(arg: str, key: str, bdir: str | None, hub: bool, required: bool) -> None:
    from cadft_verl.eval.benchmarks import BenchmarkError, benchmarks_dir, default_path, get_spec, parse_benchmark_arg

    name, path = parse_benchmark_arg(arg)
    if path is None:
        try:
            spec = get_spec(name)
        except BenchmarkError as e:
            raise ValueError(f"{key}: {e}") from None
        if getattr(spec, "builder", None) is not None:  # a generated benchmark: no file to find
            return
        if required and not (hub and spec.hub):
            try:
                default_path(spec, benchmarks_dir(bdir))
            except BenchmarkError as e:
                msg = str(e).replace("--benchmarks-dir", "eval.benchmarks_dir")
                raise ValueError(f"{key}: {msg} (or eval.hub=true, or eval.optional_benchmarks to skip it when "
                                 "missing)") from None
    elif required and not path.startswith("hf://") and not os.path.exists(os.path.expanduser(path)):
        raise ValueError(f"{key}: {name}={path}: no file at {path!r}")


def check_eval_inputs(config) -> None:
    """Refuse, before any worker starts, an eval stage that could not run: no benchmark, an unknown benchmark name,
    a required benchmark file that is missing, unknown models, template or backend."""
    from cadft_verl.eval.prompts import get_template
    from cadft_verl.math.specs import available

    ev = _block(config)
    required = _args(ev.get("benchmarks"))
    optional = _args(ev.get("optional_benchmarks"))
    if not required and not optional:
        raise ValueError(f"eval.benchmarks: the eval stage has no benchmark. Available: {available()}")
    bdir, hub = ev.get("benchmarks_dir"), bool(ev.get("hub"))
    if bdir and not os.path.isdir(os.path.expanduser(bdir)):
        raise ValueError(f"eval.benchmarks_dir: no folder at {bdir!r}")
    for arg in required:
        _check_benchmark(arg, "eval.benchmarks", bdir, hub, required=True)
    for arg in optional:  # names must exist; a missing file is skipped with a notice when the stage runs
        _check_benchmark(arg, "eval.optional_benchmarks", bdir, hub, required=False)
    models = list(ev.get("models") or [])
    if not models or any(m not in MODELS for m in models):
        raise ValueError(f"eval.models: {models} is not a non-empty list of {list(MODELS)}")
    try:
        get_template(str(ev.get("template", "qwen-boxed")))
    except Exception as e:  # noqa: BLE001 - the template registry's own message
        raise ValueError(f"eval.template: {e}") from None
    if str(ev.get("backend", "auto")) not in BACKENDS:
        raise ValueError(f"eval.backend: {ev.get('backend')!r} is not one of {list(BACKENDS)}")
    if int(ev.get("k", 1)) < 1 or (ev.get("limit") is not None and int(ev["limit"]) < 1):
        raise ValueError(f"eval.k and eval.limit must be >= 1 (k={ev.get('k')}, limit={ev.get('limit')})")


# ------------------------------------------------------------------------------------------------ what to run
def select_benchmarks(ev: dict) -> tuple[list[str], list[str]]:
    """(benchmark args to evaluate, one-line notices of skipped optional ones)."""
    from cadft_verl.eval.benchmarks import BenchmarkError, load_benchmark

    chosen = _args(ev.get("benchmarks"))
    notices = []
    for arg in _args(ev.get("optional_benchmarks")):
        if arg in chosen:
            continue
        try:
            load_benchmark(arg, ev.get("benchmarks_dir"), limit=1, hub_fallback=bool(ev.get("hub")))
        except BenchmarkError as e:
            notices.append(f"optional benchmark {arg} skipped: {str(e).splitlines()[0]}")
            continue
        chosen.append(arg)
    return chosen, notices


def _read_json(path: str) -> dict | None:
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def find_models(config, run_dir: str, results: dict) -> list[dict]:
    """The models of this run, in report order: {label, display, source} for base, stage 1's HF export and stage 2's
    final checkpoint, whichever the run has (from this launch's results, else from the run folder)."""
    loss = str(config.get("cadft", {}).get("loss", "cadft"))
    algo = str(config.get("algorithm", {}).get("adv_estimator", "rl"))
    out = [{"label": "base", "display": "base", "source": str(config.actor_rollout_ref.model.path)}]
    s1 = results.get("stage1") or _read_json(os.path.join(run_dir, f"stage1_{loss}", "COMPLETE.json"))
    if s1 and s1.get("hf_model"):
        out.append({"label": "stage1", "display": f"stage 1: {s1.get('loss', loss)}", "source": s1["hf_model"]})
    s2 = results.get("stage2") or _read_json(os.path.join(run_dir, "stage2_rl", "COMPLETE.json"))
    if s2 is None:
        tracker = os.path.join(run_dir, "stage2_rl", "latest_checkpointed_iteration.txt")
        if os.path.isfile(tracker):
            step = open(tracker).read().strip()
            s2 = {"checkpoint": os.path.join(run_dir, "stage2_rl", f"global_step_{step}")}
    if s2 and (s2.get("hf_model") or s2.get("steps") or os.path.isdir(s2.get("checkpoint", ""))):
        source = s2.get("hf_model") or s2["checkpoint"]
        prefix = f"{s1.get('loss', loss)}+" if s1 else ""
        algorithm = s2.get("algorithm", algo)
        out.append({"label": "stage2", "display": f"stage 2: {prefix}{ALGORITHM_NAMES.get(algorithm, algorithm)}",
                    "source": source})
    return out


def run_config(ev: dict, model: str, out: str, benchmarks: list[str], label: str, trust_remote_code: bool):
    from cadft_verl.eval.runner import RunConfig

    known = {f.name for f in fields(RunConfig)}
    kw = {k: ev[k] for k in _RUN_KEYS if k in ev and k in known and ev[k] is not None}
    return RunConfig(model=model, out=out, benchmarks=list(benchmarks), label=label,
                     trust_remote_code=trust_remote_code, **kw)


def _eval_key(source: str, cfg) -> dict:
    settings = {k: v for k, v in asdict(cfg).items()
                if k not in ("model", "model_source", "out", "label", "compare_with")}
    return {"model": model_fingerprint(source), "settings": settings}


def _run_isolated(cfg) -> None:
    """run_eval in a fresh process (vLLM: its GPU memory is only given back when the process ends)."""
    os.makedirs(cfg.out, exist_ok=True)
    path = os.path.join(cfg.out, "run_config.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(asdict(cfg), f, indent=1)
    rc = subprocess.call([sys.executable, "-m", "cadft_verl.eval.stage", path])
    if rc != 0:
        raise RuntimeError(f"evaluation of {cfg.model} failed (exit {rc}); its config is {path}")


def evaluate_model(model: dict, ev: dict, benchmarks: list[str], eval_dir: str, trust_remote_code: bool) -> dict:
    """One model's evaluation into ``eval_dir/<label>``; skipped when its metrics exist under the same key."""
    from cadft_verl.eval.generation import resolve_backend
    from cadft_verl.eval.runner import run_eval

    label, source = model["label"], model["source"]
    out = os.path.join(eval_dir, label)
    os.makedirs(out, exist_ok=True)
    metrics, key_path = os.path.join(out, "metrics.json"), os.path.join(out, "eval_key.json")
    cfg = run_config(ev, source, out, benchmarks, model["display"], trust_remote_code)
    key = _eval_key(source, cfg)
    record = {"model": source, "source": source, "metrics": metrics, "display": model["display"]}
    old = _read_json(key_path)
    if old is not None and os.path.isfile(metrics) and old["key"] == json.loads(json.dumps(key)):
        print(f"[cadft-verl] eval: {label} ({source}) already evaluated with these settings: {metrics}", flush=True)
        record.update(model=old.get("model", source), skipped=True)
        return record
    if os.path.exists(key_path):
        os.remove(key_path)
    path = resolve_model(source, fallback_cache=os.path.join(out, "merged_model"))
    cfg.model = path
    cfg.model_source = source if os.path.exists(source) and path != os.path.abspath(source) else None
    print(f"[cadft-verl] eval: {label} = {path}" + (f" (from {source})" if path != source else ""), flush=True)
    t0 = time.time()
    if resolve_backend(cfg.backend) == "vllm":
        _run_isolated(cfg)
    else:
        run_eval(cfg)
    with open(key_path, "w", encoding="utf-8") as f:
        json.dump({"key": key, "model": path, "seconds": round(time.time() - t0, 1)}, f, indent=1)
    record.update(model=path, skipped=False)
    return record


# ------------------------------------------------------------------------------------------------ the report
def gains_over_base(table: dict) -> dict:
    rows = {r["label"]: r["before"] for r in table["rows"]}
    base = rows.get("base")
    if base is None:
        return {}
    out = {}
    for label, row in rows.items():
        if label == "base":
            continue
        gain = {c: (row["values"][c] - base["values"][c]) if None not in (row["values"][c], base["values"][c])
                else None for c in table["benchmarks"]}
        gain["average"] = (row["average"] - base["average"]) if None not in (row["average"], base["average"]) \
            else None
        out[label] = gain
    return out


def _number(value) -> str:
    return f"{value:.4g}" if isinstance(value, (int, float)) else str(value)


def training_histories(results: dict) -> dict:
    """``{stage1, stage2: history}``: ``summary.json``'s ``results.stage{1,2}.history`` (each read from its stage's
    metrics file: every step once, also after a resume), for the stages the run has."""
    return {k: (results or {}).get(k, {}).get("history") for k in ("stage1", "stage2")
            if (results or {}).get(k, {}).get("history")}


def training_markdown(training: dict) -> list[str]:
    """The training stages' metric histories (``training_histories``): steps, first and last value of what
    matters."""
    lines = []
    for key, name in (("stage1", "stage 1"), ("stage2", "stage 2")):
        history = training.get(key) or {}
        steps = history.get("steps") or []
        for metric, value in history.items():
            if metric in ("file", "steps") or not isinstance(value, dict):
                continue
            first, last = value["first"], value["last"]
            lines.append(f"| {name} | {metric} | {_number(first['value'])} (step {first['step']}) | "
                         f"{_number(last['value'])} (step {last['step']}) |")
        if steps:
            lines.append(f"|  | steps logged | {steps[0]}..{steps[-1]} ({len(steps)} rows) | `{history['file']}` |")
    if not lines:
        return []
    return ["", "## Training (metric history)", "", "| stage | metric | first | last |", "|---|---|---:|---:|",
            *lines]


def report_markdown(table: dict, gains: dict, title: str, notices: list[str], training: list[str] | None = None) \
        -> str:
    from cadft_verl.eval.report import cold_start_markdown

    md = cold_start_markdown(table, title).rstrip("\n").split("\n")
    cols = table["benchmarks"]
    extra = []
    if gains:
        extra += ["", "## Gain over the base model (points)", "",
                  "| model | " + " | ".join(table["display"][c] for c in cols) + " | Average |",
                  "|---|" + "---:|" * (len(cols) + 1)]
        for label, g in gains.items():
            cells = [f"{100 * g[c]:+.2f}" if g[c] is not None else "–" for c in cols]
            avg = f"{100 * g['average']:+.2f}" if g["average"] is not None else "–"
            extra.append(f"| {label} | " + " | ".join(cells) + f" | **{avg}** |")
    extra += training or []
    if notices:
        extra += ["", *[f"- {n}" for n in notices]]
    # the gains go right after the results table, before the sources list
    at = md.index("Sources:") if "Sources:" in md else len(md)
    return "\n".join(md[:at] + extra[1:] + [""] + md[at:]) + "\n" if extra else "\n".join(md) + "\n"


def write_report(records: dict, eval_dir: str, metric: str, title: str, notices: list[str],
                 results: dict | None = None) -> dict:
    from cadft_verl.eval.report import cold_start_plot, cold_start_table, load_metrics

    before = [(rec["display"], load_metrics(rec["metrics"])) for rec in records.values()]
    table = cold_start_table(before, None, metric)
    gains_by_display = gains_over_base(table)
    by_display = {rec["display"]: label for label, rec in records.items()}
    models = {}
    for row in table["rows"]:
        label = by_display[row["label"]]
        rec = records[label]
        models[label] = {"display": row["label"], "model": rec["model"], "source": rec["source"],
                         "metrics": rec["metrics"], "values": row["before"]["values"], "se": row["before"]["se"],
                         "average": row["before"]["average"], "average_se": row["before"]["average_se"],
                         "gain_over_base": gains_by_display.get(row["label"])}
    paths = {k: os.path.join(eval_dir, f"{REPORT}.{k}") for k in ("md", "png", "json")}
    training = training_histories(results)
    md = report_markdown(table, gains_by_display, title, notices, training_markdown(training))
    with open(paths["md"], "w", encoding="utf-8") as f:
        f.write(md)
    with open(paths["json"], "w", encoding="utf-8") as f:
        json.dump({"metric": table["metric"], "benchmarks": table["benchmarks"], "display": table["display"],
                   "models": models, "skipped_benchmarks": notices, "table": table, "training": training}, f,
                  indent=2)
    cold_start_plot(table, paths["png"], title)
    return {"paths": paths, "markdown": md}


def run_eval_stage(config, run_dir: str, results: dict) -> dict:
    """Evaluate this run's models and write the cold-start report; returns ``summary.json``'s ``results.eval``."""
    ev = _block(config)
    eval_dir = os.path.join(run_dir, EVAL_DIR)
    os.makedirs(eval_dir, exist_ok=True)
    benchmarks, notices = select_benchmarks(ev)
    for n in notices:
        print(f"[cadft-verl] eval: {n}", flush=True)
    if not benchmarks:
        raise ValueError("eval: no benchmark left to evaluate (every optional benchmark is missing); "
                         "set eval.benchmarks")
    wanted = list(ev.get("models") or MODELS)
    found = {m["label"]: m for m in find_models(config, run_dir, results)}
    for label in wanted:
        if label not in found:
            print(f"[cadft-verl] eval: this run has no {label} model, not evaluated", flush=True)
    trust = bool(config.actor_rollout_ref.model.get("trust_remote_code", False))
    records = {}
    for label in [m for m in MODELS if m in wanted and m in found]:
        records[label] = evaluate_model(found[label], ev, benchmarks, eval_dir, trust)
    if not records:
        raise ValueError(f"eval: none of eval.models {wanted} is in this run")
    title = f"Cold-start report: {config.get('recipe_name') or 'run'}"
    report = write_report(records, eval_dir, str(ev.get("metric", "avg@k")), title, notices, results)
    return {"report": report["paths"], "benchmarks": benchmarks, "skipped_benchmarks": notices,
            "models": {label: {"model": r["model"], "source": r["source"], "metrics": r["metrics"],
                               "skipped": r["skipped"]} for label, r in records.items()},
            "_markdown": report["markdown"]}


def print_report(result: dict) -> None:
    """The console's last lines: the cold-start table and where the files are."""
    from cadft_verl.console import say

    lines = [result.get("_markdown", ""), "[cadft-verl] cold-start report:"]
    lines += [f"  {key:4s} {path}" for key, path in result["report"].items()]
    lines += [f"  {label:6s} {rec['metrics']}  ({rec['model']})" for label, rec in result["models"].items()]
    say("\n".join(lines))


def _main(argv: list[str]) -> int:
    """``python -m cadft_verl.eval.stage RUN_CONFIG.json``: one model's run_eval (the vLLM path's fresh process)."""
    from cadft_verl.eval.runner import RunConfig, run_eval

    with open(argv[0], encoding="utf-8") as f:
        run_eval(RunConfig(**json.load(f)))
    return 0


__all__ = ["MODELS", "ModelPathError", "check_eval_inputs", "find_models", "is_hf_model", "print_report",
           "run_eval_stage", "select_benchmarks"]

if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
