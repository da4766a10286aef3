"""Reports: per-run markdown table and bar chart, and the cold-start comparison (before / after GRPO).

Metrics JSON files (written by ``python -m cadft_verl.eval run``) hold fractions in [0, 1]; tables and plots show
percentages like the paper.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence

from cadft_verl.tasks import BENCHMARKS as REGISTRY
from cadft_verl.eval.metrics import resolve_metric
from cadft_verl.utils.files import atomic_path


class ReportError(Exception):
    pass


def _pct(x: float | None, se: float | None = None, digits: int = 2) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    s = f"{100 * x:.{digits}f}"
    if se is not None and not math.isnan(se):
        s += f" ± {100 * se:.{digits}f}"
    return s


def _display(name: str, metrics: dict | None = None) -> str:
    if metrics and metrics.get("display"):
        return metrics["display"]
    return REGISTRY[name].display if name in REGISTRY else name


def _order(names: Sequence[str]) -> list[str]:
    reg = [n for n in REGISTRY if n in names]
    return reg + [n for n in names if n not in REGISTRY]


def _save(fig, path: str) -> None:
    """The figure into ``path``, replaced whole (the format from its extension, png by default)."""
    import matplotlib.pyplot as plt

    fmt = os.path.splitext(path)[1].lstrip(".").lower() or "png"
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=120, format=fmt)
    finally:
        plt.close(fig)


# ------------------------------------------------------------------------------------------------ single run
def run_markdown(result: dict) -> str:
    st = result["settings"]
    k = st["k"]
    benches = result["benchmarks"]
    any_b = next(iter(benches.values()))
    pass_keys = [key for key in any_b if key.startswith("pass@")]
    pass_keys = [key for key in pass_keys if all(key in b for b in benches.values())]
    pass_show = [p for p in pass_keys if p in ("pass@1", f"pass@{k}")] or pass_keys[:1]
    cols = [f"avg@{k}", *pass_show, f"maj@{k}"]
    headers = list(cols)
    if st.get("greedy"):
        cols, headers = ["pass@1"], ["greedy pass@1"]
    lines = [
        f"# Evaluation: {st.get('label')}",
        "",
        f"- model: `{st.get('model')}`",
        f"- prompt template: `{st['template']['name']}` ({st['template'].get('description', '')})",
        f"- k = {k}, temperature = {st['temperature']}, top_p = {st['top_p']}, max new tokens = "
        f"{st['max_new_tokens']}, seed = {st['seed']}, greedy = {st['greedy']}, backend = {st['backend']}",
        f"- scoring: math-verify on the last \\boxed{{}} answer, timeout {st.get('score_timeout')} s per response",
        "- values: % ± standard error across problems",
        "",
        "| benchmark | problems | " + " | ".join(headers) + " | no answer % | timeouts |",
        "|---|---:|" + "---:|" * len(cols) + "---:|---:|",
    ]
    for name, b in benches.items():
        cells = [_pct(b[c]["mean"], b[c]["se"]) if c in b else "–" for c in cols]
        lines.append(
            f"| {_display(name, b)} | {b['n_problems']} | " + " | ".join(cells)
            + f" | {100 * b['no_answer_rate']:.1f} | {b['timeouts']} |"
        )
    avg = result.get("average") or {}
    if avg and len(benches) > 1:
        cells = [_pct(avg[c]["mean"], avg[c]["se"]) if c in avg else "–" for c in cols]
        lines.append(
            f"| **Average** ({len(benches)}) | – | " + " | ".join(cells)
            + f" | {100 * avg.get('no_answer_rate', 0):.1f} | – |"
        )
    lines.append("")
    return "\n".join(lines)


def plot_models(models: Sequence[tuple[str, dict]], path: str, metric: str = "avg@k", title: str | None = None,
                with_average: bool = True) -> str:
    """Grouped bar chart: one group per benchmark (+ Average), one bar per model, error bars = standard error."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names: list[str] = []
    for _, res in models:
        for n in res["benchmarks"]:
            if n not in names:
                names.append(n)
    names = _order(names)
    groups = [*names, "__average__"] if with_average and len(names) > 1 else names
    fig_w = max(6.0, 1.1 * len(groups) * max(1, len(models)) ** 0.5 + 2)
    fig, ax = plt.subplots(figsize=(fig_w, 4.2))
    width = 0.8 / max(1, len(models))
    for j, (label, res) in enumerate(models):
        mkey = resolve_metric(metric, res["settings"]["k"])
        vals, errs = [], []
        for g in groups:
            src = res.get("average", {}) if g == "__average__" else res["benchmarks"].get(g, {})
            m = src.get(mkey)
            vals.append(100 * m["mean"] if m else 0.0)
            errs.append(100 * m["se"] if m else 0.0)
        xs = [i + (j - (len(models) - 1) / 2) * width for i in range(len(groups))]
        bars = ax.bar(xs, vals, width, yerr=errs, capsize=2, label=label)
        for b, v in zip(bars, vals, strict=True):
            ax.annotate(f"{v:.1f}", (b.get_x() + b.get_width() / 2, v), ha="center", va="bottom", fontsize=7,
                        xytext=(0, 2), textcoords="offset points")
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(["Average" if g == "__average__" else _display(g) for g in groups], rotation=20, ha="right")
    ks = {res["settings"]["k"] for _, res in models}
    shown = resolve_metric(metric, ks.pop()) if len(ks) == 1 else metric
    ax.set_ylabel(f"{shown} (%)")
    ax.set_ylim(0, max(5.0, ax.get_ylim()[1] * 1.08))
    ax.set_title(title or f"{shown} per benchmark")
    if len(models) > 1 or models:
        ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    _save(fig, path)
    return path


# ------------------------------------------------------------------------------------------------ compare
def load_metrics(path: str) -> dict:
    if os.path.isdir(path):
        path = os.path.join(path, "metrics.json")
    if not os.path.isfile(path):
        raise ReportError(f"metrics file not found: {path}")
    try:
        with open(path, encoding="utf-8") as f:
            res = json.load(f)
    except json.JSONDecodeError as e:
        raise ReportError(f"{path}:{e.lineno}: malformed JSON ({e.msg})") from None
    if not isinstance(res, dict) or "benchmarks" not in res or "settings" not in res:
        raise ReportError(f"{path}: not a metrics.json from `python -m cadft_verl.eval run` (no benchmarks/settings)")
    res["_path"] = os.path.abspath(path)
    return res


def parse_labeled(items: Sequence[str]) -> list[tuple[str, dict]]:
    """``label=path`` (or just ``path``: the run's own label) -> [(label, metrics)]."""
    out = []
    for it in items:
        if "=" in it and not os.path.exists(it):
            label, path = it.split("=", 1)
        else:
            label, path = None, it
        res = load_metrics(path)
        out.append((label or res["settings"].get("label") or os.path.basename(os.path.dirname(res["_path"])), res))
    return out


def _value(res: dict, bench: str, metric: str) -> tuple[float, float] | None:
    m = res["benchmarks"].get(bench, {}).get(resolve_metric(metric, res["settings"]["k"]))
    return (m["mean"], m["se"]) if m else None


def cold_start_table(
    before: Sequence[tuple[str, dict]],
    after: Sequence[tuple[str, dict]] | None = None,
    metric: str = "avg@k",
    benchmarks: Sequence[str] | None = None,
) -> dict:
    """Rows = models (base / SFT / DFT / CADFT ...), columns = benchmarks + average, before and after GRPO.

    ``after`` rows are matched to ``before`` rows by label. The average is the unweighted mean over the columns.
    Columns default to the benchmarks present in every given file.
    """
    after = list(after or [])
    everything = [r for _, r in [*before, *after]]
    if benchmarks:
        cols = list(benchmarks)
        for r in everything:
            missing = [c for c in cols if c not in r["benchmarks"]]
            if missing:
                raise ReportError(f"{r['_path']}: no results for {missing}")
    else:
        common = set(everything[0]["benchmarks"])
        for r in everything[1:]:
            common &= set(r["benchmarks"])
        if not common:
            raise ReportError("the metrics files have no benchmark in common")
        cols = _order(sorted(common))
    after_by = {label: r for label, r in after}
    unknown = [label for label in after_by if label not in {lb for lb, _ in before}]
    if unknown:
        raise ReportError(f"--after labels {unknown} have no --before row (labels must match)")

    def stage(res: dict | None) -> dict | None:
        if res is None:
            return None
        vals = {c: _value(res, c, metric) for c in cols}
        means = [v[0] for v in vals.values() if v]
        ses = [v[1] for v in vals.values() if v]
        return {
            "values": {c: (v[0] if v else None) for c, v in vals.items()},
            "se": {c: (v[1] if v else None) for c, v in vals.items()},
            "average": sum(means) / len(means) if means else None,
            "average_se": math.sqrt(sum(s * s for s in ses)) / len(ses) if ses else None,
            "k": res["settings"]["k"],
            "source": res["_path"],
            "model": res["settings"].get("model"),
        }

    rows = []
    for label, res in before:
        b, a = stage(res), stage(after_by.get(label))
        gain = None
        if a is not None:
            gain = {c: (a["values"][c] - b["values"][c]) for c in cols}
            gain["average"] = a["average"] - b["average"]
        rows.append({"label": label, "before": b, "after": a, "gain": gain})
    ks = {r["settings"]["k"] for r in everything}
    return {
        "metric": resolve_metric(metric, ks.pop()) if len(ks) == 1 else metric,
        "benchmarks": cols,
        "display": {c: _display(c) for c in cols},
        "rows": rows,
        "has_after": bool(after),
    }


def cold_start_markdown(table: dict, title: str | None = None) -> str:
    cols = table["benchmarks"]
    head = "| model | " + " | ".join(table["display"][c] for c in cols) + " | Average |"
    sep = "|---|" + "---:|" * (len(cols) + 1)
    metric = table["metric"]
    lines = [f"# {title or 'Cold-start comparison'}", "",
             f"Metric: {metric} (%, ± standard error across problems).", ""]

    def stage_table(key: str, heading: str) -> None:
        lines.extend([f"## {heading}", "", head, sep])
        for r in table["rows"]:
            s = r[key]
            if s is None:
                lines.append(f"| {r['label']} | " + " | ".join("–" for _ in cols) + " | – |")
                continue
            cells = [_pct(s["values"][c], s["se"][c]) for c in cols]
            lines.append(f"| {r['label']} | " + " | ".join(cells) + f" | **{_pct(s['average'])}** |")
        lines.append("")

    stage_table("before", "Before GRPO (after the SFT-stage warm start)" if table["has_after"] else "Results")
    if table["has_after"]:
        stage_table("after", "After GRPO")
        lines.extend(["## RL gain (after − before, points)", "", head, sep])
        for r in table["rows"]:
            g = r["gain"]
            if g is None:
                lines.append(f"| {r['label']} | " + " | ".join("–" for _ in cols) + " | – |")
            else:
                cells = [f"{100 * g[c]:+.2f}" if g[c] is not None else "–" for c in cols]
                lines.append(f"| {r['label']} | " + " | ".join(cells) + f" | **{100 * g['average']:+.2f}** |")
        lines.extend(["", "## Summary", "", "| model | average before | average after | RL gain |",
                      "|---|---:|---:|---:|"])
        for r in table["rows"]:
            b, a, g = r["before"], r["after"], r["gain"]
            lines.append(
                f"| {r['label']} | {_pct(b['average'])} | {_pct(a['average']) if a else '–'} | "
                + (f"{100 * g['average']:+.2f}" if g else "–") + " |"
            )
        lines.append("")
    lines.append("Sources:")
    for r in table["rows"]:
        lines.append(f"- {r['label']}: before `{r['before']['source']}`"
                     + (f", after `{r['after']['source']}`" if r["after"] else ""))
    lines.append("")
    return "\n".join(lines)


def cold_start_plot(table: dict, path: str, title: str | None = None, extra_panels: int = 0,
                    draw_extra=None) -> str:
    """One panel per stage (before, after GRPO) of each model's score per benchmark; ``draw_extra(axes)`` draws
    ``extra_panels`` more panels to their right (the eval stage's RL readiness)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = table["benchmarks"]
    groups = [*cols, "average"]
    stages = [("before", "before GRPO" if table["has_after"] else "")] + (
        [("after", "after GRPO")] if table["has_after"] else []
    )
    rows = table["rows"]
    n = len(stages) + extra_panels
    fig, axes = plt.subplots(1, n, figsize=(max(6.0, 1.2 * len(groups) + 2) * n ** 0.8, 4.2), squeeze=False,
                             sharey=not extra_panels)
    width = 0.8 / max(1, len(rows))
    for ax, (key, name) in zip(axes[0][: len(stages)], stages, strict=True):
        for j, r in enumerate(rows):
            s = r[key]
            if s is None:
                continue
            vals = [100 * (s["values"][c] or 0.0) for c in cols] + [100 * (s["average"] or 0.0)]
            errs = [100 * (s["se"][c] or 0.0) for c in cols] + [100 * (s["average_se"] or 0.0)]
            xs = [i + (j - (len(rows) - 1) / 2) * width for i in range(len(groups))]
            ax.bar(xs, vals, width, yerr=errs, capsize=2, label=r["label"])
        ax.set_xticks(range(len(groups)))
        ax.set_xticklabels([table["display"].get(g, "Average") for g in groups], rotation=20, ha="right")
        ax.set_title(name)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8)
    axes[0][0].set_ylabel(f"{table['metric']} (%)")
    if extra_panels and draw_extra is not None:
        draw_extra(list(axes[0][len(stages):]))
    fig.suptitle(title or "Cold-start comparison")
    fig.tight_layout()
    _save(fig, path)
    return path
