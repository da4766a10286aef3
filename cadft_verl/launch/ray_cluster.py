"""The launch's Ray cluster: started only for a stage that has work to do on Ray workers (a rerun that only evaluates
starts none), with the environment the workers need (the CPU platform, the metric history's file logger), and shut
down before a stage that needs none."""

from __future__ import annotations

import os
import time

from omegaconf import OmegaConf

from cadft_verl.integration import metrics_history

#: variables of the launch's process that every Ray worker needs too
WORKER_ENV = ("VERL_PLATFORM", "VLLM_TARGET_DEVICE", "VLLM_CPU_KVCACHE_SPACE", "VERL_FILE_LOGGER_ROOT",
              metrics_history.ENV)


def start(config) -> float:
    """Start Ray unless it runs; returns the seconds it took (0 when it was already running)."""
    import ray
    from verl.trainer.constants_ppo import get_ppo_ray_runtime_env

    if ray.is_initialized():
        return 0.0
    t0 = time.time()
    runtime_env = get_ppo_ray_runtime_env(config)
    env_vars = runtime_env.setdefault("env_vars", {})
    for key in WORKER_ENV:
        if os.environ.get(key):
            env_vars[key] = os.environ[key]
    if config.transfer_queue.get("enable", False) or ("rl" in config.stages and config.trainer.get("use_v1", True)):
        env_vars["TRANSFER_QUEUE_ENABLE"] = "1"
    kwargs = OmegaConf.to_container(config.ray_kwargs.get("ray_init", {}), resolve=True)
    kwargs["runtime_env"] = OmegaConf.to_container(OmegaConf.merge(runtime_env, kwargs.get("runtime_env") or {}))
    ray.init(**kwargs)
    return time.time() - t0


def stop() -> None:
    import ray

    if ray.is_initialized():
        ray.shutdown()
