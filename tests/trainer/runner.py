"""Run a verl SFT trainer module under torchrun on the CPU and read back its per-step metrics."""

from __future__ import annotations

import os

from cadft_verl.platform import cpu_overrides
from cadft_verl.trainer.launch import run_sft as _run


def run_sft(module, workdir, model, train_file, nproc=1, overrides=(), steps=2, batch=8, micro=2, check=True):
    """Returns (list of per-step metric dicts, completed process)."""
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
    base += cpu_overrides() if module == "verl.trainer.sft_trainer" else ["profile=cpu"]
    rows, proc = _run(base + list(overrides), str(workdir), nproc=nproc, module=module, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"{module} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}")
    return rows, proc
