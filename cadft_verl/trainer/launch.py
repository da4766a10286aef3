"""Launch the SFT stage under torchrun from Python (used by the CPU default run, benchmarks and tests)."""

from __future__ import annotations

import json
import os
import subprocess
import sys


def sft_command(nproc: int = 1, overrides=(), module: str = "cadft_verl.trainer.sft") -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", "-m", module,
            *overrides]


def run_sft(overrides, workdir, nproc: int = 1, module: str = "cadft_verl.trainer.sft", cpu: bool = True,
            capture: bool = True, timeout: float | None = None):
    """Run one SFT job; per-step metrics go to ``workdir/metrics.jsonl`` (verl's file logger).

    Returns (list of per-step metric dicts, CompletedProcess).
    """
    os.makedirs(workdir, exist_ok=True)
    metrics_file = os.path.join(workdir, "metrics.jsonl")
    env = dict(os.environ, VERL_FILE_LOGGER_PATH=metrics_file, PYTHONUNBUFFERED="1")
    if cpu:
        env["VERL_PLATFORM"] = "cpu"
    proc = subprocess.run(sft_command(nproc, overrides, module), env=env, cwd=workdir, text=True,
                          capture_output=capture, timeout=timeout)
    return read_metrics(metrics_file), proc


def read_metrics(path) -> list[dict]:
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line)["data"] for line in f if line.strip()]
