"""``python -m cadft_verl.study``: several recipes over several seeds, and the cold-start table.

    python -m cadft_verl.study                                   # the embedded CPU default, 5 recipes x 3 seeds
    python -m cadft_verl.study --recipes cadft_then_grpo dft_then_grpo --seeds 0 1 --rl-steps 4
    python -m cadft_verl.study --own-config --out outputs/my_study profile=gpu \\
        actor_rollout_ref.model.path=Qwen/Qwen2.5-Math-1.5B cadft.data.train_files=... data.train_files=...

Without ``--own-config`` every run starts from the embedded CPU default's overrides (``cadft_verl.demo.cpu_default``:
its data and pretrained base model are built into ``<out>/inputs`` and the cache); ``key=value`` overrides go on
top, for every run. With ``--own-config`` the runs get only the given overrides (your model, data, profile). A
rerun into the same ``--out`` skips the finished runs and resumes the others; new recipes or seeds are added.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time

from cadft_verl.study.arms import DEFAULT_ARMS, known_arms, resolve_arms
from cadft_verl.study.plan import StudyLock, StudyPlan, check_folder, make_plan, record_study
from cadft_verl.study.runner import run_finished, start_run
from cadft_verl.study.table import write_table


def say(text: str) -> None:
    print(f"[study] {text}", flush=True)


def embedded_base(out: str, stage1_steps: int | None, rl_steps: int | None) -> list[str]:
    """The embedded CPU default's overrides, its inputs built (or reused) in ``<out>/inputs`` and the cache."""
    from cadft_verl.demo import cpu_default

    say("building the embedded default's inputs: the arithmetic task's data and the pretrained base model (cached)")
    data_dir, model_dir = cpu_default.build_inputs(os.path.join(out, "inputs"))
    kwargs = {"rl_steps": rl_steps} if rl_steps else {}
    return [o for o in cpu_default.launch_overrides(data_dir, model_dir, "<run>", stage1_steps=stage1_steps,
                                                     **kwargs)
            if not o.startswith("trainer.default_local_dir=")]


def check_runs(plan: StudyPlan) -> None:
    """Compose each arm's launch config (its first seed) and run the launch's own input checks on it, so that a bad
    override, a missing file or an unknown benchmark stops the study before any worker starts."""
    import contextlib
    import io

    from hydra import compose, initialize_config_module

    from cadft_verl.check import preflight
    from cadft_verl.launch.stages import check_inputs
    from cadft_verl.plugin import ensure_loaded

    ensure_loaded()
    seen = set()
    for run in plan.runs:
        if run.arm in seen:
            continue
        seen.add(run.arm)
        noise = io.StringIO()
        try:
            with contextlib.redirect_stdout(noise), contextlib.redirect_stderr(noise), \
                    initialize_config_module(config_module="cadft_verl.recipes", version_base=None):
                config = compose("main", overrides=run.overrides[:])
                check_inputs(config)
                preflight(config)
        except Exception as exc:  # noqa: BLE001 - reported with the arm it came from
            raise ValueError(f"recipe {run.arm}: {type(exc).__name__}: {exc}") from None


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m cadft_verl.study", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join("outputs", "study"), help="the study's folder")
    ap.add_argument("--recipes", nargs="*", default=list(DEFAULT_ARMS),
                    help=f"what to compare (default: {' '.join(DEFAULT_ARMS)}); any of {known_arms()}")
    ap.add_argument("--seeds", nargs="*", default=[0, 1, 2], help="seeds (default: 0 1 2)")
    ap.add_argument("--own-config", action="store_true",
                    help="runs get only the given overrides, not the embedded CPU default's")
    ap.add_argument("--stage1-steps", type=int, default=None,
                    help="embedded default: stage-1 steps (default: its two epochs)")
    ap.add_argument("--rl-steps", type=int, default=None,
                    help="embedded default: stage-2 steps (default: cpu_default.RL_STEPS, 16)")
    ap.add_argument("--keep-going", action="store_true", help="go on with the other runs after a failed one")
    ap.add_argument("overrides", nargs="*", help="hydra overrides (key=value) for every run")
    args = ap.parse_args(argv)
    # `--recipes a b key=value`: the lists end where the overrides begin
    for name in ("recipes", "seeds"):
        values = [str(v) for v in getattr(args, name)]
        first = next((i for i, v in enumerate(values) if "=" in v), len(values))
        args.overrides = [*values[first:], *args.overrides]
        setattr(args, name, values[:first])
    try:
        args.seeds = [int(v) for v in args.seeds]
    except ValueError:
        ap.error(f"--seeds: {args.seeds} are not all integers")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        arms = resolve_arms(args.recipes)
        if args.own_config and (args.stage1_steps or args.rl_steps):
            raise ValueError("--stage1-steps and --rl-steps size the embedded default; with --own-config set "
                             "cadft.trainer.total_training_steps and trainer.total_training_steps")
        out = os.path.abspath(args.out)
        sizes = {"stage1_steps": args.stage1_steps, "rl_steps": args.rl_steps}
        plan = make_plan(out, arms, args.seeds, args.overrides, embedded=not args.own_config, sizes=sizes)
        check_folder(plan)
    except ValueError as exc:
        print(f"[study] error: {exc}", file=sys.stderr)
        return 2
    created = not os.path.exists(out)
    with StudyLock(out):
        try:
            base = [] if args.own_config else embedded_base(out, args.stage1_steps, args.rl_steps)
            plan = make_plan(out, arms, args.seeds, args.overrides, embedded=not args.own_config, base=base,
                             sizes=sizes)
            check_runs(plan)
        except (ValueError, FileNotFoundError) as exc:
            print(f"[study] error: {exc}", file=sys.stderr)
        else:
            record_study(plan)
            return run_study(plan, args.keep_going)
    if created:  # nothing of a refused study stays behind (the embedded inputs are rebuilt in seconds)
        shutil.rmtree(out, ignore_errors=True)
    return 2


def run_study(plan: StudyPlan, keep_going: bool = False) -> int:
    n = len(plan.runs)
    say(f"{_count(len(plan.arms), 'recipe')} x {_count(len(plan.seeds), 'seed')} = {_count(n, 'run')} in {plan.out}")
    finished = [r for r in plan.runs if run_finished(r)]
    failed = []
    t_start = time.time()
    for i, run in enumerate(plan.runs, 1):
        if run in finished:
            say(f"{i}/{n} {run.name}: finished earlier, skipped ({run.run_dir})")
            continue
        say(f"{i}/{n} {run.name}: running (console {run.run_dir}/console.log, logs {run.run_dir}/launch.log)")
        with RunProgress(f"{i}/{n} {run.name}") as progress:
            result = start_run(run, finished, show=progress.show)
        if result["ok"]:
            finished.append(run)
            say(f"{i}/{n} {run.name}: done in {result['seconds'] / 60:.1f} min: {scores_line(run)}")
            continue
        failed.append(run)
        say(f"{i}/{n} {run.name}: FAILED (exit {result['rc']}); see {result['console']} and {result['launch_log']}")
        if not keep_going:
            break
    if finished:
        table = write_table(plan)
        print(table["markdown"].split("\n## ")[0] + "\n## " + table["markdown"].split("\n## ")[1], flush=True)
        say("table: " + ", ".join(table["paths"].values()))
    say(f"{len(finished)}/{n} runs finished, {len(failed)} failed, {(time.time() - t_start) / 60:.1f} min; outputs "
        f"in {plan.out}" + ("; rerun the same command to resume" if len(finished) < n else ""))
    return 0 if len(finished) == n else 1


class RunProgress:
    """On a terminal, the running launch's latest progress line, redrawn in place (``stage 1 (cadft) [###--] 3/32
    ...``); elsewhere nothing (the study prints one line when each run starts and ends)."""

    def __init__(self, label: str):
        self.label = label
        self.tty = sys.stdout.isatty()
        self.drawn = False

    def show(self, line: str) -> None:
        if not self.tty or not line.startswith(("stage ", "[cadft-verl] eval:")):
            return
        width = shutil.get_terminal_size((120, 20)).columns
        text = f"[study] {self.label}: {line}"[: width - 1]
        sys.stdout.write("\r" + text.ljust(width - 1))
        sys.stdout.flush()
        self.drawn = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.drawn:
            sys.stdout.write("\r" + " " * (shutil.get_terminal_size((120, 20)).columns - 1) + "\r")
            sys.stdout.flush()
        return False


def _count(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def scores_line(run) -> str:
    from cadft_verl.launch.run_dir import RunDir
    from cadft_verl.study.table import run_scores

    s = run_scores(RunDir(run.run_dir).report_json())
    parts = [f"{name} {100 * s[key]['average']:.1f}" for key, name in
             (("base", "base"), ("before", "before RL"), ("after", "after RL")) if s.get(key)]
    return ", ".join(parts) + " (average %)"


if __name__ == "__main__":
    sys.exit(main())
