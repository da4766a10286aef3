"""The ``eval`` stage of the one launch (summary key ``eval``): the base model, stage 1's HF export and stage 2's
final checkpoint on the configured benchmarks, and the run's cold-start report (``cadft_verl.eval.cold_start``).

Configured by the ``eval:`` block of ``recipes/main.yaml`` (docs/eval.md). Outputs, below ``<run dir>/eval/``:

- ``<label>/`` per model (``base``, ``stage1``, ``stage2``): ``python -m cadft_verl.eval run``'s outputs
  (``samples.jsonl``, ``metrics.json``/``.md``/``.png``) and ``eval_key.json`` (the model's fingerprint and the eval
  settings). A rerun skips a model whose ``metrics.json`` exists and whose key is unchanged;
- ``<label>_readiness/``: the same for the RL-readiness samples (``eval.readiness_k`` answers per problem at the RL
  stage's rollout temperature), unless the report's own samples are those;
- ``cold_start.md`` / ``.png`` / ``.json``: one row per model (base, warm start, RL), one column per benchmark plus
  the average, each model's gain over the base model, and the RL-readiness table (avg@k, pass@k, headroom,
  entropy).

Generation runs in the launch's own process with transformers (``backend: hf``, the CPU's), or, with vLLM, in one
fresh process per model so that each model's GPU memory is freed before the next one loads.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import asdict

from cadft_verl.eval.config import MODELS, EvalConfig
from cadft_verl.eval.model_path import model_fingerprint, resolve_model
from cadft_verl.launch.rl import algorithm_name
from cadft_verl.launch.run_dir import RunDir
from cadft_verl.launch.stage import Launch, Stage
from cadft_verl.utils.files import read_json, write_json


def _block(config) -> dict:
    """The ``eval`` block, typed and validated (``cadft_verl.eval.config.EvalConfig``), as a dict."""
    return asdict(EvalConfig.from_config(config))


def _rollout(config) -> dict:
    """The RL stage's rollout settings (``actor_rollout_ref.rollout``), where the readiness samples' come from."""
    return (config.get("actor_rollout_ref") or {}).get("rollout") or {}


def _name(arg: str) -> str:
    from cadft_verl.eval.benchmarks import parse_benchmark_arg

    return parse_benchmark_arg(arg)[0]


def readiness_benchmarks(ev: dict, benchmarks: list[str]) -> list[str]:
    """The evaluated benchmarks (args) that get readiness samples (``eval.readiness_benchmarks``; null: all)."""
    wanted = ev.get("readiness_benchmarks")
    return list(benchmarks) if wanted is None else [b for b in benchmarks if _name(b) in wanted]


def readiness_block(ev: dict, config, benchmarks: list[str]) -> dict | None:
    """The eval block of the readiness run (``eval.readiness_k`` samples at the rollout's temperature and top_p);
    None when readiness is off or the report's own run samples exactly that on the same benchmarks (its samples
    are used)."""
    sampling = EvalConfig.from_mapping(ev).readiness_sampling(_rollout(config))
    if sampling is None:
        return None
    same = all(ev.get(k) == v for k, v in sampling.items() if k != "greedy")
    if not ev.get("greedy") and same and readiness_benchmarks(ev, benchmarks) == list(benchmarks):
        return None
    return {**ev, **sampling}


def _args(value) -> list[str]:
    from cadft_verl.eval.benchmarks import expand_benchmark_args

    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    return expand_benchmark_args([str(v) for v in value])


# ------------------------------------------------------------------------------------------------ input checks
def _check_benchmark(arg: str, key: str, bdir: str | None, hub: bool, required: bool) -> None:
    from cadft_verl.eval.benchmarks import BenchmarkError, benchmarks_dir, default_path, parse_benchmark_arg
    from cadft_verl.tasks import get_benchmark as get_spec

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
    """Refuse, before any worker starts, an eval stage that could not run: a bad setting (``EvalConfig``: k, limit,
    temperature, models, backend ...), no benchmark, an unknown benchmark name, a required benchmark file that is
    missing, an unknown template."""
    from cadft_verl.math.prompts import get_template
    from cadft_verl.tasks import available

    ev = _block(config)
    EvalConfig.from_mapping(ev).readiness_sampling(_rollout(config))  # the rollout temperature it samples at
    required = _args(ev.get("benchmarks"))
    optional = _args(ev.get("optional_benchmarks"))
    if not required and not optional:
        raise ValueError(f"eval.benchmarks: the eval stage has no benchmark. Available: {available()}")
    names = [_name(a) for a in required + optional]
    unknown = [b for b in ev.get("readiness_benchmarks") or [] if b not in names]
    if unknown:
        raise ValueError(f"eval.readiness_benchmarks: {unknown} not among the evaluated benchmarks {names}")
    bdir, hub = ev.get("benchmarks_dir"), bool(ev.get("hub"))
    if bdir and not os.path.isdir(os.path.expanduser(bdir)):
        raise ValueError(f"eval.benchmarks_dir: no folder at {bdir!r}")
    for arg in required:
        _check_benchmark(arg, "eval.benchmarks", bdir, hub, required=True)
    for arg in optional:  # names must exist; a missing file is skipped with a notice when the stage runs
        _check_benchmark(arg, "eval.optional_benchmarks", bdir, hub, required=False)
    try:
        get_template(str(ev.get("template", "qwen-boxed")))
    except Exception as e:  # noqa: BLE001 - the template registry's own message
        raise ValueError(f"eval.template: {e}") from None


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


def find_models(config, run: RunDir, results: dict) -> list[dict]:
    """The models of this run, in report order: {label, display, source} for base, stage 1's HF export and stage 2's
    final checkpoint, whichever the run has (from this launch's results, else from the run folder)."""
    loss = str(config.get("cadft", {}).get("loss", "cadft"))
    algo = str(config.get("algorithm", {}).get("adv_estimator", "rl"))
    out = [{"label": "base", "display": "base", "source": str(config.actor_rollout_ref.model.path)}]
    s1 = results.get("stage1") or run.stage1(loss).complete()
    if s1 and s1.get("hf_model"):
        out.append({"label": "stage1", "display": f"stage 1: {s1.get('loss', loss)}", "source": s1["hf_model"]})
    s2 = results.get("stage2") or run.stage2.complete()
    if s2 is None and run.stage2.latest_step():
        s2 = {"checkpoint": run.stage2.step_dir(run.stage2.latest_step())}
    if s2 and (s2.get("hf_model") or s2.get("steps") or os.path.isdir(s2.get("checkpoint", ""))):
        source = s2.get("hf_model") or s2["checkpoint"]
        prefix = f"{s1.get('loss', loss)}+" if s1 else ""
        algorithm = s2.get("algorithm", algo)
        out.append({"label": "stage2", "display": f"stage 2: {prefix}{algorithm_name(algorithm)}",
                    "source": source})
    return out


def run_config(ev: dict, model: str, out: str, benchmarks: list[str], label: str, trust_remote_code: bool):
    from cadft_verl.eval.runner import RunConfig

    return RunConfig(model=model, out=out, benchmarks=list(benchmarks), label=label,
                     trust_remote_code=trust_remote_code, **EvalConfig.from_mapping(ev).run_kwargs())


def _eval_key(source: str, cfg) -> dict:
    settings = {k: v for k, v in asdict(cfg).items()
                if k not in ("model", "model_source", "out", "label", "compare_with")}
    return {"model": model_fingerprint(source), "settings": settings}


def _run_isolated(cfg) -> None:
    """run_eval in a fresh process (vLLM: its GPU memory is only given back when the process ends)."""
    path = write_json(os.path.join(cfg.out, "run_config.json"), asdict(cfg), indent=1)
    rc = subprocess.call([sys.executable, "-m", "cadft_verl.launch.evaluate", path])
    if rc != 0:
        raise RuntimeError(f"evaluation of {cfg.model} failed (exit {rc}); its config is {path}")


def evaluate_model(model: dict, ev: dict, benchmarks: list[str], run: RunDir, trust_remote_code: bool,
                   folder: str | None = None) -> dict:
    """One model's evaluation into ``eval/<folder>`` (default: its label); skipped when its metrics exist under the
    same key (a key file cut by a kill counts as none: the model is evaluated again)."""
    from cadft_verl.eval.generation import resolve_backend
    from cadft_verl.eval.runner import run_eval

    label, source = model["label"], model["source"]
    out = run.eval_model_dir(folder or label)
    os.makedirs(out, exist_ok=True)
    metrics, key_path = os.path.join(out, "metrics.json"), os.path.join(out, "eval_key.json")
    cfg = run_config(ev, source, out, benchmarks, model["display"], trust_remote_code)
    key = _eval_key(source, cfg)
    record = {"model": source, "source": source, "metrics": metrics, "display": model["display"]}
    old = read_json(key_path, tolerant=True)
    if isinstance(old, dict) and os.path.isfile(metrics) and old.get("key") == json.loads(json.dumps(key)):
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
    write_json(key_path, {"key": key, "model": path, "seconds": round(time.time() - t0, 1)}, indent=1)
    record.update(model=path, skipped=False)
    return record


class EvalStage(Stage):
    name, key, uses_ray = "eval", "eval", False

    def check(self, config) -> None:
        check_eval_inputs(config)

    def run(self, launch: Launch) -> dict:
        """Evaluate this run's models and write the cold-start report; returns ``summary.json``'s ``results.eval``."""
        return run_eval_stage(launch.config, launch.run, launch.results)

    def finish(self, launch: Launch) -> None:
        from cadft_verl.eval.cold_start import print_report

        print_report(launch.results[self.key])


def run_eval_stage(config, run: RunDir, results: dict) -> dict:
    from cadft_verl.eval.cold_start import write_report

    ev = _block(config)
    os.makedirs(run.eval_dir, exist_ok=True)
    benchmarks, notices = select_benchmarks(ev)
    for n in notices:
        print(f"[cadft-verl] eval: {n}", flush=True)
    if not benchmarks:
        raise ValueError("eval: no benchmark left to evaluate (every optional benchmark is missing); "
                         "set eval.benchmarks")
    wanted = list(ev.get("models") or MODELS)
    found = {m["label"]: m for m in find_models(config, run, results)}
    for label in wanted:
        if label not in found:
            print(f"[cadft-verl] eval: this run has no {label} model, not evaluated", flush=True)
    trust = bool(config.actor_rollout_ref.model.get("trust_remote_code", False))
    ready = readiness_block(ev, config, benchmarks)
    ready_on = readiness_benchmarks(ev, benchmarks)
    records = {}
    for label in [m for m in MODELS if m in wanted and m in found]:
        records[label] = evaluate_model(found[label], ev, benchmarks, run, trust)
        if ready is not None and ready_on:
            print(f"[cadft-verl] eval: {label}: RL readiness, {ready['k']} samples per problem at temperature "
                  f"{ready['temperature']} (the rollout's)", flush=True)
            extra = evaluate_model(found[label], ready, ready_on, run, trust, folder=f"{label}_readiness")
            records[label]["readiness_metrics"] = extra["metrics"]
        elif ev.get("readiness", True) and ready_on:
            records[label]["readiness_metrics"] = records[label]["metrics"]
    if not records:
        raise ValueError(f"eval: none of eval.models {wanted} is in this run")
    title = f"Cold-start report: {config.get('recipe_name') or 'run'}"
    paths = {ext: run.report(ext) for ext in ("md", "png", "json")}
    report = write_report(records, paths, str(ev.get("metric", "avg@k")), title, notices, results)
    return {"report": report["paths"], "benchmarks": benchmarks, "skipped_benchmarks": notices,
            "models": {label: {"model": r["model"], "source": r["source"], "metrics": r["metrics"],
                               "readiness_metrics": r.get("readiness_metrics"), "skipped": r["skipped"]}
                       for label, r in records.items()}}


def _main(argv: list[str]) -> int:
    """``python -m cadft_verl.launch.evaluate RUN_CONFIG.json``: one model's run_eval (vLLM's fresh process)."""
    from cadft_verl.eval.runner import RunConfig, run_eval

    with open(argv[0], encoding="utf-8") as f:
        run_eval(RunConfig(**json.load(f)))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
