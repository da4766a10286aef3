"""A study's runs and its folder.

``<out>/study.json`` records the study's settings (the launch overrides every run shares, and whether they are the
embedded CPU default's) and its runs; a second study with other settings into the same folder is refused, naming
both, and a rerun with the same settings resumes (new recipes or seeds are added to it). ``<out>/study.lock`` holds
the process that is writing into the folder: a second study started while it runs is refused. Each run has its own
folder, ``<out>/runs/<arm>/seed<k>``: a launch's ``trainer.default_local_dir``.
"""

from __future__ import annotations

import os
import sys
from dataclasses import asdict, dataclass, field

from cadft_verl.study.arms import Arm, seed_overrides
from cadft_verl.utils.files import FolderBusyError, FolderLock, lock_holder, read_json, write_json

STUDY_FILE = "study.json"
LOCK_FILE = "study.lock"
RUNS_DIR = "runs"


def override_key(item: str) -> str:
    """The config key a hydra override sets (``++a.b=1`` and ``a.b=2`` set the same key)."""
    if "=" not in item:
        raise ValueError(f"override {item!r} is not key=value")
    return item.split("=", 1)[0].lstrip("+~")


def merge_overrides(*groups) -> list[str]:
    """The override lists in order, a later value of a key replacing an earlier one (hydra refuses a key twice)."""
    merged: dict[str, str] = {}
    for group in groups:
        for item in group:
            key = override_key(item)
            merged.pop(key, None)
            merged[key] = item
    return list(merged.values())


@dataclass
class Run:
    arm: str
    seed: int
    recipe: str
    run_dir: str
    #: the launch's overrides, ``recipe=`` first
    overrides: list[str]

    @property
    def name(self) -> str:
        return f"{self.arm} seed {self.seed}"

    def command(self) -> list[str]:
        return [sys.executable, "-m", "verl.trainer.main", *self.overrides]


@dataclass
class StudyPlan:
    out: str
    arms: list[Arm]
    seeds: list[int]
    #: the user's overrides, which every run shares
    overrides: list[str]
    #: whether the runs start from the embedded CPU default's overrides (``cadft_verl.demo.cpu_default``)
    embedded: bool
    #: the embedded default's sizes (``--stage1-steps``, ``--rl-steps``) when given
    sizes: dict = field(default_factory=dict)
    runs: list[Run] = field(default_factory=list)

    def settings(self) -> dict:
        """What makes two studies the same study (the recipes and seeds may grow)."""
        return {"embedded_default": self.embedded, "sizes": dict(self.sizes), "overrides": list(self.overrides)}


def check_seeds(seeds) -> list[int]:
    seeds = list(seeds)
    if not seeds:
        raise ValueError("--seeds: empty; give at least one seed (e.g. --seeds 0 1 2)")
    dup = sorted({s for s in seeds if seeds.count(s) > 1})
    if dup:
        raise ValueError(f"--seeds: {dup} given twice")
    return seeds


def make_plan(out: str, arms: list[Arm], seeds, overrides: list[str], embedded: bool,
              base: list[str] = (), sizes: dict | None = None) -> StudyPlan:
    """The runs, one per (arm, seed): ``recipe=``, then ``base`` (the embedded default's overrides), the user's, the
    arm's, the seed's and the run's folder, a later value of a key winning."""
    out = os.path.abspath(out)
    for item in overrides:
        if override_key(item) in ("trainer.default_local_dir", "recipe"):
            raise ValueError(f"override {item!r}: the study sets {override_key(item)} for each run itself")
    plan = StudyPlan(out=out, arms=arms, seeds=check_seeds(seeds), overrides=list(overrides), embedded=embedded,
                     sizes={k: v for k, v in (sizes or {}).items() if v})
    for arm in arms:
        for seed in plan.seeds:
            run_dir = os.path.join(out, RUNS_DIR, arm.name, f"seed{seed}")
            plan.runs.append(Run(arm.name, seed, arm.recipe, run_dir, merge_overrides(
                [f"recipe={arm.recipe}"], base, plan.overrides, arm.overrides, seed_overrides(seed),
                [f"trainer.default_local_dir={run_dir}", f"trainer.experiment_name={arm.name}_seed{seed}"])))
    return plan


def check_folder(plan: StudyPlan) -> None:
    """Refuse a folder that holds another study (other settings) or one being written by a running study."""
    old = read_json(os.path.join(plan.out, STUDY_FILE))
    if old is not None and old.get("settings") != plan.settings():
        theirs, ours = old.get("settings", {}), plan.settings()
        diff = [f"  {k}: there {theirs.get(k)!r}, here {ours.get(k)!r}" for k in sorted({*theirs, *ours})
                if theirs.get(k) != ours.get(k)]
        raise ValueError(f"{plan.out} holds another study (its {STUDY_FILE}: recipes {old.get('recipes')}, seeds "
                         f"{old.get('seeds')}), with other settings:\n" + "\n".join(diff)
                         + "\ngive this study another --out, or rerun that one with its settings")
    if os.path.isdir(plan.out) and old is None and any(e != LOCK_FILE for e in os.listdir(plan.out)):
        raise ValueError(f"{plan.out} is not empty and holds no {STUDY_FILE}: give the study an empty or new --out "
                         f"(it has {sorted(os.listdir(plan.out))[:8]})")
    holder = lock_holder(plan.out, LOCK_FILE)
    if holder is not None:
        raise ValueError(f"{plan.out}: another study is writing into this folder (pid {holder.get('pid')} on "
                         f"{holder.get('host')}); wait for it or give this one another --out")


class StudyLock(FolderLock):
    """``<out>/study.lock`` while the study runs (``cadft_verl.utils.files.FolderLock``: safe against an empty or
    stale lock file and against two studies that find the same stale lock at once)."""

    def __init__(self, out: str):
        super().__init__(out, LOCK_FILE, what="study")

    def acquire(self) -> StudyLock:
        try:
            return super().acquire()
        except FolderBusyError as e:
            raise ValueError(f"{e} (another study is writing into this folder)") from None


def record_study(plan: StudyPlan) -> str:
    """Write ``study.json``: the settings, and the union of this and earlier invocations' recipes, seeds and runs."""
    path = os.path.join(plan.out, STUDY_FILE)
    old = read_json(path) or {}
    arms = list(dict.fromkeys([*old.get("recipes", []), *(a.name for a in plan.arms)]))
    seeds = list(dict.fromkeys([*old.get("seeds", []), *plan.seeds]))
    runs = {r["run_dir"]: r for r in old.get("runs", [])}
    runs.update({r.run_dir: asdict(r) for r in plan.runs})
    os.makedirs(plan.out, exist_ok=True)
    write_json(path, {"settings": plan.settings(), "recipes": arms, "seeds": seeds, "runs": list(runs.values())})
    return path
