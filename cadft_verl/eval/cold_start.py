"""The cold-start report of a launch's eval stage: one row per model (base, warm start, RL), one column per benchmark
plus the average, each model's gain over the base model, its RL readiness (avg@k, pass@k, headroom and entropy of k
samples at the rollout temperature, ``cadft_verl.eval.readiness``), and the training stages' metric histories
(``<run dir>/eval/cold_start.{md,png,json}``; tables and plot from ``cadft_verl.eval.report``)."""

from __future__ import annotations

from cadft_verl.utils.files import write_json, write_text


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


def report_markdown(table: dict, gains: dict, title: str, notices: list[str], training: list[str] | None = None,
                    readiness: list[str] | None = None) -> str:
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
    extra += readiness or []
    extra += training or []
    if notices:
        extra += ["", *[f"- {n}" for n in notices]]
    # the gains go right after the results table, before the sources list
    at = md.index("Sources:") if "Sources:" in md else len(md)
    return "\n".join(md[:at] + extra[1:] + [""] + md[at:]) + "\n" if extra else "\n".join(md) + "\n"


def write_report(records: dict, paths: dict, metric: str, title: str, notices: list[str],
                 results: dict | None = None) -> dict:
    """The report of the evaluated ``records`` (label -> {display, model, source, metrics}) into ``paths`` (md, png,
    json), each written whole; returns ``{paths, markdown}``."""
    from cadft_verl.eval import readiness
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
                         "gain_over_base": gains_by_display.get(row["label"]),
                         "readiness": readiness.readiness_of(load_metrics(rec["readiness_metrics"]))
                         if rec.get("readiness_metrics") else None}
    training = training_histories(results)
    score_name = "greedy" if all(m["settings"].get("greedy") for _, m in before) else table["metric"]
    ready_md = readiness.markdown(models, score_name, table["display"])
    md = report_markdown(table, gains_by_display, title, notices, training_markdown(training), ready_md)
    write_text(paths["md"], md)
    write_json(paths["json"], {"metric": table["metric"], "benchmarks": table["benchmarks"],
                               "display": table["display"], "models": models, "skipped_benchmarks": notices,
                               "table": table, "training": training})
    has_ready = any(m["readiness"] for m in models.values())
    cold_start_plot(table, paths["png"], title, extra_panels=2 if has_ready else 0,
                    draw_extra=lambda axes: readiness.plot_axes(*axes, models, score_name))
    return {"paths": paths, "markdown": md}


def print_report(result: dict) -> None:
    """The console's last lines: the cold-start table (read back from its markdown file) and where the files are."""
    from cadft_verl.console import say

    with open(result["report"]["md"], encoding="utf-8") as f:
        markdown = f.read()
    lines = [markdown, "[cadft-verl] cold-start report:"]
    lines += [f"  {key:4s} {path}" for key, path in result["report"].items()]
    lines += [f"  {label:6s} {rec['metrics']}  ({rec['model']})" for label, rec in result["models"].items()]
    say("\n".join(lines))


