"""Write and check requirements/gpu.txt, the GPU lock (see requirements/README.md, "gpu.txt").

python requirements/check_gpu_lock.py --from-report REPORT.json --write requirements/gpu.txt   # after pip's resolver
python requirements/check_gpu_lock.py                                                           # check the lock

Checks (also run by tests/install/test_gpu_lock_on_cpu.py):
- the pins of verl's own ``vllm`` extra (vllm, torch, torchvision, torchaudio, transformers) are the lock's;
- every requirement of this project (pyproject.toml) is satisfied by the lock;
- no package is older in the GPU lock than in the CPU lock by a major version (the failure mode this guards
  against: antlr4 4.13 drags hydra-core back to 0.11 and omegaconf to 1.4, which verl cannot run with).
``cpu_subset()`` is the part of the lock that the second CPU test environment installs (scripts/setup_gpu_pins.sh).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

HERE = Path(__file__).resolve().parent
GPU_LOCK = HERE / "gpu.txt"
CPU_LOCK = HERE / "cpu.txt"
PYPROJECT = HERE.parent / "pyproject.toml"

# packages pinned by verl's vllm extra: their versions come from verl, not from the resolver's freedom
VERL_EXTRA = "vllm"
# older than in the CPU lock on purpose: verl's vllm extra pins this stack, and transformers 5.9.0 itself requires
# huggingface-hub<2.0 and tokenizers<=0.23.0
EXPECTED_OLDER = {"torch", "torchvision", "torchaudio", "transformers", "vllm", "huggingface-hub", "tokenizers"}

# not installed by the CPU test environment on the GPU stack's versions: CUDA-only builds and the rollout engine
# (CPU torch 2.13 is that environment's only torch; it has no vLLM)
CPU_EXCLUDED_PREFIXES = ("nvidia-", "cuda-", "cupy", "flashinfer", "xformers", "triton", "tokenspeed-", "tilelang")
CPU_EXCLUDED = {"torch", "torchvision", "torchaudio", "torchcodec", "vllm", "flash-attn", "quack-kernels",
                "deep-gemm", "nixl"}

_HEADER = """\
# Full lock of `pip install ".[gpu,test]"` (this project + verl[vllm]==0.9.1) for Linux x86_64, CPython 3.11, CUDA.
# Produced by pip's resolver (requirements/lock_gpu.sh: a dry-run report for the manylinux x86_64 platforms) and
# checked by requirements/check_gpu_lock.py. Do not edit by hand: rerun requirements/lock_gpu.sh.
# Install on a CUDA machine (docs/install.md): pip install -r requirements/gpu.txt && pip install --no-deps -e .
"""


def read_lock(path: Path = GPU_LOCK) -> dict[str, str]:
    """``{canonical name: version}`` of a ``name==version`` file (comments and blank lines ignored)."""
    pins = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)", line)
        if not m:
            raise ValueError(f"{path}:{n}: not a 'name==version' pin: {line!r}")
        pins[canonicalize_name(m.group(1))] = m.group(2)
    return pins


def verl_extra_pins(requires: list[str], extra: str = VERL_EXTRA) -> dict[str, str]:
    """The ``==`` pins of one extra of verl's metadata (``importlib.metadata.requires('verl')``)."""
    pins = {}
    for text in requires:
        req = Requirement(text)
        if req.marker is None or not req.marker.evaluate({"extra": extra}) or req.marker.evaluate({"extra": ""}):
            continue
        for spec in req.specifier:
            if spec.operator == "==":
                pins[canonicalize_name(req.name)] = spec.version
    return pins


def project_requirements(extras: tuple[str, ...] = ("test",)) -> list[Requirement]:
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in extras:
        reqs += project["optional-dependencies"][extra]
    return [Requirement(r) for r in reqs]


def check(lock: dict[str, str], verl_requires: list[str] | None, cpu_lock: dict[str, str] | None) -> list[str]:
    """Problems of a GPU lock, one line each (empty: the lock is good)."""
    problems = []
    if verl_requires is not None:
        pins = verl_extra_pins(verl_requires)
        if not pins:
            problems.append(f"verl's metadata has no '==' pins in its {VERL_EXTRA!r} extra")
        for name, version in sorted(pins.items()):
            if lock.get(name) != version:
                problems.append(f"{name}: verl[{VERL_EXTRA}] pins {version}, the GPU lock has {lock.get(name)}")
    for req in project_requirements():
        name = canonicalize_name(req.name)
        if name not in lock:
            problems.append(f"{req}: required by pyproject.toml, missing from the GPU lock")
        elif not req.specifier.contains(lock[name], prereleases=True):
            problems.append(f"{req}: required by pyproject.toml, the GPU lock has {lock[name]}")
    for name, cpu_version in sorted((cpu_lock or {}).items()):
        if name not in lock or name in EXPECTED_OLDER:
            continue
        gpu, cpu = Version(lock[name]), Version(cpu_version)
        if gpu.major < cpu.major or (gpu.major == 0 and cpu.major == 0 and gpu.minor < cpu.minor):
            problems.append(f"{name}: downgraded to {lock[name]} in the GPU lock (CPU lock: {cpu_version})")
    return problems


def cpu_subset(lock: dict[str, str]) -> dict[str, str]:
    """The pins of the GPU lock that the CPU test environment installs (no CUDA builds, no torch, no vLLM)."""
    return {n: v for n, v in lock.items() if n not in CPU_EXCLUDED and not n.startswith(CPU_EXCLUDED_PREFIXES)}


def lock_from_report(report: dict) -> dict[str, str]:
    """``{name: version}`` of pip's ``--report`` JSON, without this project itself."""
    pins = {}
    for item in report["install"]:
        name = canonicalize_name(item["metadata"]["name"])
        if name != "cadft-verl":
            pins[name] = item["metadata"]["version"]
    return pins


def write_lock(pins: dict[str, str], path: Path) -> None:
    body = "".join(f"{n}=={v}\n" for n, v in sorted(pins.items()))
    path.write_text(_HEADER + body)


def _installed_verl_requires() -> list[str] | None:
    from importlib import metadata

    try:
        return metadata.requires("verl") or []
    except metadata.PackageNotFoundError:
        return None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--from-report", help="pip --report JSON to turn into the lock")
    p.add_argument("--write", help="where to write the lock (with --from-report)")
    p.add_argument("--cpu-subset", action="store_true", help="print the pins the CPU test environment installs")
    args = p.parse_args(argv)
    if args.from_report:
        lock = lock_from_report(json.loads(Path(args.from_report).read_text()))
    else:
        lock = read_lock()
    if args.cpu_subset:
        print("".join(f"{n}=={v}\n" for n, v in sorted(cpu_subset(lock).items())), end="")
        return 0
    verl_requires = _installed_verl_requires()
    report_verl = None
    if args.from_report:  # verl's metadata as the resolver saw it (no local install needed)
        for item in json.loads(Path(args.from_report).read_text())["install"]:
            if canonicalize_name(item["metadata"]["name"]) == "verl":
                report_verl = item["metadata"].get("requires_dist", [])
    problems = check(lock, report_verl if report_verl is not None else verl_requires, read_lock(CPU_LOCK))
    for line in problems:
        print(f"GPU lock: {line}", file=sys.stderr)
    if problems:
        return 1
    if args.write:
        write_lock(lock, Path(args.write))
        print(f"wrote {args.write}: {len(lock)} pins")
    else:
        print(f"GPU lock OK: {len(lock)} pins")
    return 0


if __name__ == "__main__":
    sys.exit(main())
