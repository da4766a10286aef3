"""Run a verl SFT trainer module under torchrun on the CPU and read back its per-step metrics."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from cadft_verl.platform import cpu_overrides


def run_sft(module, workdir, model, train_file, nproc=1, overrides=(), steps=2, batch=8, micro=2, check=True):
    """Returns (list of per-step metric dicts, completed process)."""
    os.makedirs(workdir, exist_ok=True)
    metrics_file = os.path.join(workdir, "metrics.jsonl")
    base = [
        f"data.train_files={train_file}",
        f"model.path={model}",
        f"data.train_batch_size={batch}",
        f"data.micro_batch_size_per_gpu={micro}",
        "data.use_dynamic_bsz=False",
        "data.max_length=512",
        "data.truncation=right",
        "data.num_workers=0",
        f"trainer.total_training_steps={steps}",
        f"trainer.default_local_dir={os.path.join(workdir, 'ckpt')}",
        "trainer.logger=[console,file]",
    ]
    if module == "verl.trainer.sft_trainer":
        base += cpu_overrides()
    else:
        base += ["profile=cpu"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", "-m", module]
    env = dict(os.environ, VERL_PLATFORM="cpu", VERL_FILE_LOGGER_PATH=metrics_file, PYTHONUNBUFFERED="1")
    proc = subprocess.run(cmd + base + list(overrides), env=env, capture_output=True, text=True, timeout=600, cwd=workdir)
    if check and proc.returncode != 0:
        raise AssertionError(f"{module} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}")
    rows = []
    if os.path.exists(metrics_file):
        with open(metrics_file) as f:
            rows = [json.loads(line)["data"] for line in f if line.strip()]
    return rows, proc
