"""RL readiness of a model: how much room its own samples leave for RL (docs/eval.md).

From one ``python -m cadft_verl.eval run`` of k samples per problem at the RL stage's rollout temperature:

- ``avg``: avg@k, the mean accuracy of a sample (what RL's reward averages);
- ``pass``: pass@k, the share of problems the policy solves at least once in k tries (what RL can reach);
- ``headroom``: pass@k − avg@k, per problem then averaged: the part of what it can reach that a typical sample
  misses, which RL's group-relative update can turn into pass@1 (0 when every problem is all right or all wrong);
- ``entropy``: the policy's mean per-token entropy (nats) on its samples (``cadft_verl.eval.metrics``).

Each is ``{mean, se}`` with the standard error over problems (over benchmarks: ``average_metrics``' rule).
"""

from __future__ import annotations

import math

#: the readiness columns, in report order, and their headers
COLUMNS = ("avg", "pass", "headroom", "entropy")


def _metric_keys(k: int) -> dict[str, str]:
    return {"avg": f"avg@{k}", "pass": f"pass@{k}", "headroom": f"headroom@{k}", "entropy": "entropy"}


def readiness_of(metrics: dict) -> dict:
    """``{k, temperature, top_p, source, benchmarks: {name: {avg, pass, headroom, entropy}}, average: {...}}`` from
    a run's metrics (``metrics.json``); a value the run has not (entropy of a generator that measures none) is
    None."""
    st = metrics["settings"]
    k = int(st["k"])
    keys = _metric_keys(k)

    def pick(src: dict) -> dict:
        return {col: (dict(src[key]) if isinstance(src.get(key), dict) else None) for col, key in keys.items()}

    benches = {name: pick(m) for name, m in metrics["benchmarks"].items()}
    return {"k": k, "temperature": st.get("temperature"), "top_p": st.get("top_p"),
            "source": metrics.get("_path"), "benchmarks": benches,
            "average": pick(metrics.get("average") or {}) if len(benches) > 1 else next(iter(benches.values()))}


def headers(k: int) -> list[str]:
    return [f"avg@{k}", f"pass@{k}", f"headroom (pass@{k} − avg@{k})", "entropy (nats/token)"]


def _cell(col: str, stat: dict | None) -> str:
    if not stat or stat.get("mean") is None or (isinstance(stat["mean"], float) and math.isnan(stat["mean"])):
        return "–"
    if col == "entropy":
        return f"{stat['mean']:.3f} ± {stat['se']:.3f}"
    return f"{100 * stat['mean']:.2f} ± {100 * stat['se']:.2f}"


def markdown(models: dict, score_name: str, display: dict) -> list[str]:
    """The report's RL-readiness table: per model (and benchmark, with the average when there are several) the
    report's score beside avg@k, pass@k, headroom and entropy. ``models``: label -> the report JSON's model entry
    (``values``, ``se``, ``average``, ``average_se``, ``display``, ``readiness``)."""
    ready = {label: m["readiness"] for label, m in models.items() if m.get("readiness")}
    if not ready:
        return []
    first = next(iter(ready.values()))
    k, temp = first["k"], first["temperature"]
    lines = ["", f"## RL readiness ({k} samples per problem at temperature {temp}, the RL rollout's)", "",
             "Percent (entropy in nats per token), ± standard error across problems. Headroom is what the model "
             "reaches in k tries but a typical sample misses: the room RL has to turn samples into pass@1.", "",
             f"| model | benchmark | {score_name} | " + " | ".join(headers(k)) + " |",
             "|---|---|---:|" + "---:|" * len(COLUMNS)]
    for label, r in ready.items():
        m = models[label]
        names = list(r["benchmarks"])
        rows = [(n, display.get(n, n), r["benchmarks"][n], m["values"].get(n), m["se"].get(n)) for n in names]
        if len(names) > 1:
            rows.append(("average", "**Average**", r["average"], m["average"], m["average_se"]))
        for _, shown, stats, score, se in rows:
            score_cell = _cell("score", {"mean": score, "se": se}) if score is not None else "–"
            lines.append(f"| {m['display']} | {shown} | {score_cell} | "
                         + " | ".join(_cell(c, stats.get(c)) for c in COLUMNS) + " |")
    return lines


def plot_axes(ax_scores, ax_entropy, models: dict, score_name: str) -> None:
    """Two panels of the report's figure: per model, the score, avg@k and pass@k (average over benchmarks); and
    the entropy."""
    ready = [(label, m) for label, m in models.items() if m.get("readiness")]
    if not ready:
        return
    k = ready[0][1]["readiness"]["k"]
    series = [(score_name, lambda m: (m["average"], m["average_se"])),
              (f"avg@{k}", lambda m: _pair(m["readiness"]["average"]["avg"])),
              (f"pass@{k}", lambda m: _pair(m["readiness"]["average"]["pass"]))]
    width = 0.8 / len(series)
    for j, (name, get) in enumerate(series):
        vals = [get(m) for _, m in ready]
        xs = [i + (j - (len(series) - 1) / 2) * width for i in range(len(ready))]
        ax_scores.bar(xs, [100 * (v[0] or 0.0) for v in vals], width, yerr=[100 * (v[1] or 0.0) for v in vals],
                      capsize=2, label=name)
    ent = [_pair(m["readiness"]["average"]["entropy"]) for _, m in ready]
    ax_entropy.bar(range(len(ready)), [v[0] or 0.0 for v in ent], 0.6, yerr=[v[1] or 0.0 for v in ent], capsize=2,
                   color="tab:purple")
    for ax in (ax_scores, ax_entropy):
        ax.set_xticks(range(len(ready)))
        ax.set_xticklabels([m["display"] for _, m in ready], rotation=20, ha="right", fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    ax_scores.set_title(f"RL readiness (k={k}, average over benchmarks)")
    ax_scores.set_ylabel("%")
    ax_scores.legend(fontsize=8)
    ax_entropy.set_title("policy entropy on its samples")
    ax_entropy.set_ylabel("nats per token")


def _pair(stat: dict | None) -> tuple:
    return (stat["mean"], stat["se"]) if stat else (None, None)
