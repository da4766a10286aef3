"""The study's table: every run's cold-start report (``<run>/eval/cold_start.json``), aggregated over seeds.

For each arm and each benchmark (and their average): the score before RL (the warm start; the base model for an
arm without stage 1), after RL, the RL gain (after − before) and the gain over the base model, each as mean ±
standard error over the seeds (the SE of the per-seed values, n − 1 in the variance; none with one seed). Beside
them, each arm's RL readiness (``readiness``: avg@k, pass@k, headroom and entropy of the base, warm-start and RL
models, average over the benchmarks, from the reports' ``readiness``; absent for reports written before it).
Written to ``<out>/table.{md,json,png}``.
"""

from __future__ import annotations

import json
import math
import os

from cadft_verl.eval.readiness import COLUMNS as READINESS_COLUMNS
from cadft_verl.launch.run_dir import RunDir
from cadft_verl.study.plan import StudyPlan
from cadft_verl.utils.files import write_text

STUDY_REPORT = "table"
STAGES = ("before", "after", "rl_gain", "over_base")
HEADINGS = {"before": "before RL", "after": "after RL", "rl_gain": "RL gain", "over_base": "after RL − base"}


def mean_se(values: list[float]) -> dict:
    n = len(values)
    if not n:
        return {"mean": None, "se": None, "n": 0}
    mean = sum(values) / n
    se = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1) / n) if n > 1 else None
    return {"mean": mean, "se": se, "n": n}


def run_scores(report: dict) -> dict:
    """One run's scores by column: ``{stage: {column: value}}`` for base, before RL, after RL and the gains."""
    models = report["models"]
    cols = [*report["benchmarks"], "average"]

    def values(label):
        m = models.get(label)
        if m is None:
            return None
        return {c: (m["average"] if c == "average" else m["values"].get(c)) for c in cols}

    base, before, after = values("base"), values("stage1") or values("base"), values("stage2")
    out = {"base": base, "before": before, "after": after, "rl_gain": None, "over_base": None}
    if after and before:
        out["rl_gain"] = {c: _diff(after[c], before[c]) for c in cols}
    if after and base:
        out["over_base"] = {c: _diff(after[c], base[c]) for c in cols}
    return out


#: the models of a run whose RL readiness the table shows: the base, the warm start (before RL), the RL model
READINESS_MODELS = {"base": "base", "before": "stage1", "after": "stage2"}


def run_readiness(report: dict) -> dict | None:
    """One run's readiness by model: ``{base, before, after: {avg, pass, headroom, entropy: value}}`` (the average
    over the benchmarks), and ``k``; None for a report without it."""
    models = report["models"]
    out, k = {}, None
    for stage, label in READINESS_MODELS.items():
        ready = (models.get(label) or {}).get("readiness")
        if stage == "before" and ready is None and "stage1" not in models:
            ready = (models.get("base") or {}).get("readiness")  # an arm without stage 1 starts RL from the base
        if ready:
            k = ready["k"]
            out[stage] = {col: (stat or {}).get("mean") for col, stat in ready["average"].items()}
    return {"k": k, **out} if out else None


def _diff(a, b):
    return None if a is None or b is None else a - b


def _history_last(summary: dict, stage: str, name: str):
    entry = (((summary.get("results") or {}).get(stage) or {}).get("history") or {}).get(name)
    return entry["last"]["value"] if isinstance(entry, dict) else None


def collect(plan: StudyPlan) -> dict:
    """The finished runs' scores and the per-arm aggregates; runs without a report are listed as missing."""
    per_run, missing, columns, display, metric = [], [], None, {}, None
    for run in plan.runs:
        layout = RunDir(run.run_dir)
        path = layout.report("json")
        if not os.path.isfile(path):
            missing.append(run.run_dir)
            continue
        report = layout.report_json()
        summary = layout.summary()
        cols = [*report["benchmarks"], "average"]
        columns = cols if columns is None else [c for c in columns if c in cols]
        display.update(report.get("display") or {})
        metric = metric or report.get("metric")
        per_run.append({"arm": run.arm, "seed": run.seed, "run_dir": run.run_dir, "report": path,
                        "scores": run_scores(report), "readiness": run_readiness(report),
                        "stage1_downweighted": _history_last(summary, "stage1", "down-weighted"),
                        "stage2_reward": _history_last(summary, "stage2", "reward"),
                        "wall_s": round(sum((summary.get("wall_s") or {}).values()), 1)})
    arms = {}
    for arm in plan.arms:
        runs = [r for r in per_run if r["arm"] == arm.name]
        if not runs:
            continue
        agg = {}
        for stage in ("base", *STAGES):
            agg[stage] = {c: mean_se([r["scores"][stage][c] for r in runs
                                      if r["scores"][stage] and r["scores"][stage].get(c) is not None])
                          for c in columns}
        arms[arm.name] = {"about": arm.about, "recipe": arm.recipe, "seeds": [r["seed"] for r in runs], **agg}
        ready = [r["readiness"] for r in runs if r.get("readiness")]
        if ready:
            arms[arm.name]["readiness"] = {"k": ready[0]["k"], **{stage: {col: mean_se(
                [r[stage][col] for r in ready if stage in r and r[stage].get(col) is not None])
                for col in READINESS_COLUMNS} for stage in READINESS_MODELS}}
    paired = paired_differences(per_run, [a.name for a in plan.arms if a.name in arms], columns or [])
    display = {c: display.get(c, c) for c in columns or []}
    display["average"] = "Average"
    return {"out": plan.out, "metric": metric, "columns": columns or [], "display": display, "arms": arms,
            "paired": paired, "runs": per_run, "missing": missing}


#: the arm the others are compared with, seed by seed, when the study has it (else its first arm)
REFERENCE = "cadft_then_grpo"


def paired_differences(per_run: list[dict], arm_names: list[str], columns: list[str]) -> dict:
    """The reference arm minus each other arm, seed by seed (a seed is the same data order in every arm, so the
    paired difference cancels what the order does to all of them), before and after RL: mean ± SE over the seeds
    both have."""
    if len(arm_names) < 2:
        return {}
    ref = REFERENCE if REFERENCE in arm_names else arm_names[0]
    by = {(r["arm"], r["seed"]): r["scores"] for r in per_run}
    out = {"reference": ref, "against": {}}
    for other in (a for a in arm_names if a != ref):
        seeds = sorted(s for (a, s) in by if a == ref and (other, s) in by)
        out["against"][other] = {"seeds": seeds, **{stage: {c: mean_se([
            by[(ref, s)][stage][c] - by[(other, s)][stage][c] for s in seeds
            if by[(ref, s)][stage] and by[(other, s)][stage]
            and None not in (by[(ref, s)][stage].get(c), by[(other, s)][stage].get(c))]) for c in columns}
            for stage in ("before", "after")}}
    return out


def _cell(stat: dict, signed: bool = False) -> str:
    if not stat or stat["mean"] is None:
        return "–"
    value = 100 * stat["mean"]
    value = 0.0 if abs(value) < 0.05 else value  # no "-0.0"
    mean = f"{value:+.1f}" if signed else f"{value:.1f}"
    return f"{mean} ± {100 * stat['se']:.1f}" if stat["se"] is not None else mean


def markdown(data: dict, title: str) -> str:
    cols, disp = data["columns"], data["display"]
    lines = [f"# {title}", "", f"Study folder: `{data['out']}`.", "",
             f"Metric: {data['metric']} (%), mean ± standard error over seeds. \"before RL\" is the warm start (the "
             "base model for an arm without one); RL gain = after − before, per seed.", ""]
    lines += ["## Average over the benchmarks", "",
              "| recipe | seeds | base | before RL | after RL | RL gain | after RL − base |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for name, arm in data["arms"].items():
        lines.append(f"| {name} | {len(arm['seeds'])} | {_cell(arm['base']['average'])} | "
                     f"{_cell(arm['before']['average'])} | **{_cell(arm['after']['average'])}** | "
                     f"{_cell(arm['rl_gain']['average'], True)} | {_cell(arm['over_base']['average'], True)} |")
    lines += readiness_markdown(data)
    for stage in STAGES:
        lines += ["", f"## {HEADINGS[stage]}, per benchmark", "",
                  "| recipe | " + " | ".join(disp[c] for c in cols) + " |", "|---|" + "---:|" * len(cols)]
        for name, arm in data["arms"].items():
            lines.append(f"| {name} | " + " | ".join(_cell(arm[stage][c], stage in ("rl_gain", "over_base"))
                                                      for c in cols) + " |")
    paired = data.get("paired") or {}
    if paired:
        ref = paired["reference"]
        lines += ["", f"## {ref} minus each other recipe, seed by seed (points)", "",
                  "The same seed is the same data order in every recipe, so these paired differences cancel what the "
                  "order does to all of them.", "",
                  "| against | seeds | " + " | ".join(f"{disp[c]} before RL" for c in cols) + " | "
                  + " | ".join(f"{disp[c]} after RL" for c in cols) + " |",
                  "|---|---:|" + "---:|" * (2 * len(cols))]
        for other, diff in paired["against"].items():
            lines.append(f"| {other} | {len(diff['seeds'])} | "
                         + " | ".join(_cell(diff["before"][c], True) for c in cols) + " | "
                         + " | ".join(_cell(diff["after"][c], True) for c in cols) + " |")
    lines += ["", "## Runs", "",
              "| recipe | seed | before RL | after RL | stage-1 down-weighted (last step) | stage-2 reward (last step) "
              "| wall (s) | report (in the study folder) |", "|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in data["runs"]:
        s = r["scores"]
        lines.append(f"| {r['arm']} | {r['seed']} | {_pct(s['before'])} | {_pct(s['after'])} | "
                     f"{_num(r['stage1_downweighted'])} | {_num(r['stage2_reward'])} | {r['wall_s']} | "
                     f"`{os.path.relpath(r['report'], data['out'])}` |")
    lines += ["", "Recipes:", *[f"- `{n}`: {a['about']}" for n, a in data["arms"].items()]]
    if data["missing"]:
        lines += ["", "Not finished (no cold-start report yet): "
                  + ", ".join(f"`{os.path.relpath(m, data['out'])}`" for m in data["missing"])]
    return "\n".join(lines) + "\n"


def readiness_markdown(data: dict) -> list[str]:
    """The arms' RL readiness (docs/eval.md): per arm and model, the score and avg@k, pass@k, headroom (points) and
    entropy (nats per token), average over the benchmarks, mean ± SE over seeds; nothing for a study without it."""
    arms = {name: arm for name, arm in data["arms"].items() if arm.get("readiness")}
    if not arms:
        return []
    k = next(iter(arms.values()))["readiness"]["k"]
    lines = ["", f"## RL readiness (average over the benchmarks; {k} samples per problem at the rollout temperature)",
             "", f"The score ({data['metric']}) beside what RL can work with: avg@{k} and pass@{k} of sampled answers "
             f"(%), headroom = pass@{k} − avg@{k} (points), and the policy's entropy on its samples (nats per "
             "token). Mean ± SE over seeds.", "",
             f"| recipe | model | score | avg@{k} | pass@{k} | headroom | entropy |", "|---|---|---:|---:|---:|---:|---:|"]
    names = {"base": "base", "before": "warm start (before RL)", "after": "after RL"}
    for name, arm in arms.items():
        for stage, shown in names.items():
            ready = arm["readiness"].get(stage) or {}
            if not any(stat.get("n") for stat in ready.values()):
                continue
            ent = ready.get("entropy") or {}
            ent_cell = "–" if ent.get("mean") is None else (
                f"{ent['mean']:.3f}" + (f" ± {ent['se']:.3f}" if ent.get("se") is not None else ""))
            lines.append(f"| {name} | {shown} | {_cell(arm[stage]['average'])} | {_cell(ready.get('avg'))} | "
                         f"{_cell(ready.get('pass'))} | {_cell(ready.get('headroom'))} | {ent_cell} |")
    return lines


def _pct(scores: dict | None) -> str:
    return f"{100 * scores['average']:.1f}" if scores and scores.get("average") is not None else "–"


def _num(value) -> str:
    return f"{value:.3g}" if isinstance(value, (int, float)) else "–"


def plot(data: dict, path: str, title: str) -> str:
    """One panel per benchmark and the average: each recipe's score before and after RL (mean ± SE over seeds),
    the base model as a dashed line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols, names = data["columns"], list(data["arms"])
    fig, axes = plt.subplots(1, len(cols), figsize=(max(5.0, 1.1 * len(names) + 1.5) * len(cols) ** 0.85, 4.2),
                             squeeze=False, sharey=True)
    for ax, col in zip(axes[0], cols, strict=True):
        for k, (stage, label) in enumerate((("before", "before RL"), ("after", "after RL"))):
            means = [100 * (data["arms"][n][stage][col]["mean"] or 0.0) for n in names]
            errs = [100 * (data["arms"][n][stage][col]["se"] or 0.0) for n in names]
            ax.bar([i + (k - 0.5) * 0.38 for i in range(len(names))], means, 0.38, yerr=errs, capsize=2, label=label)
        base = [data["arms"][n]["base"][col]["mean"] for n in names if data["arms"][n]["base"][col]["mean"] is not None]
        if base:
            ax.axhline(100 * sum(base) / len(base), color="gray", ls="--", lw=1, label="base model")
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names, rotation=25, ha="right", fontsize=8)
        ax.set_title(data["display"].get(col, col))
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel(f"{data['metric']} (%)")
    axes[0][0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_table(plan: StudyPlan, title: str | None = None) -> dict:
    """Write ``table.md``, ``table.json`` and ``table.png`` into the study folder; returns the data and the paths."""
    data = collect(plan)
    if not data["runs"]:
        raise ValueError(f"{plan.out}: no run of this study has finished; nothing to tabulate")
    n_arms, n_seeds = len(data["arms"]), len(plan.seeds)
    title = title or (f"Cold-start study ({n_arms} recipe{'s' * (n_arms != 1)} × {n_seeds} seed"
                      f"{'s' * (n_seeds != 1)})")
    paths = {k: os.path.join(plan.out, f"{STUDY_REPORT}.{k}") for k in ("md", "json", "png")}
    md = markdown(data, title)
    write_text(paths["md"], md)
    write_text(paths["json"], json.dumps(data, indent=2))
    plot(data, paths["png"], title)
    return {"data": data, "paths": paths, "markdown": md}
