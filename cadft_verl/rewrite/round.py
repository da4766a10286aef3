"""One rewrite round (METHOD.md section 4), independent of how candidates are generated and scored.

After optimizer step ``step``:
1. [``score_unvisited``, multi-epoch stages] samples not visited since the previous round are scored in no-grad
   passes (history visits);
2. candidates come from the selector (``selection``: top ``fraction`` of the dataset by EMA z over ``min_visits``
   training visits, or, in a single pass, by z in a no-grad look-ahead of the samples still to come); each is drawn
   with probability ``prob``;
3. the generator (verl's rollout replicas with the current weights) samples ``n`` answers per drawn sample;
4. each answer is verified against the sample's reference (``verify``), then the original target and the surviving
   answers are scored under the current policy (one no-grad pass); the lowest-NLL answer replaces the target;
5. an accepted sample starts a fresh history, pending until it is trained on with the new target;
6. every candidate gets an audit record; the round's metrics are returned.
If generation or scoring fails (exception or ``generation_timeout``), every original target stays, the failure is
logged and recorded in the audit and the metrics (``rewrite/failed``), and training goes on.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

from cadft_verl.history import CompatibilityHistory

from .audit import AuditRecord
from .config import RewriteConfig
from .dataset import RewritableSFTDataset
from .generator import GenRequest, RewriteGenerator
from .selection import LookaheadSelector, PersistentSelector, draw
from .verify import verify_candidates

logger = logging.getLogger("cadft_verl")

# score_fn(list of (index, target text or None for the current one)) -> per item length-normalised NLL (None: no tokens)
ScoreFn = Callable[[list[tuple[int, str | None]]], list[float | None]]


def _bounded(fn, timeout: float):
    """``fn()`` in a daemon thread; GenerationError when it does not return within ``timeout`` seconds (a generator
    that ignores its own timeout cannot block training: the round gives up and the originals stay)."""
    import threading

    from .generator import GenerationError

    box: dict = {}

    def target():
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
            box["error"] = exc

    thread = threading.Thread(target=target, name="cadft-rewrite-generate", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise GenerationError(f"generation did not finish within {timeout:.0f} s")
    if "error" in box:
        raise box["error"]
    return box["value"]


def _failure(exc: BaseException, limit: int = 1500) -> str:
    """``round failed: <type>: <message>``; for long (remote) tracebacks the end, where the actual error is."""
    text = f"{type(exc).__name__}: {exc}".strip()
    if len(text) > limit:
        text = text[:200] + " ... " + text[-(limit - 205):]
    return f"round failed: {text}"


def _mean(values):
    values = [v for v in values if v is not None and math.isfinite(v)]
    return sum(values) / len(values) if values else float("nan")


class RewriteRound:
    def __init__(self, cfg: RewriteConfig, dataset: RewritableSFTDataset, history: CompatibilityHistory, tokenizer,
                 generator: RewriteGenerator | None, score_fn: ScoreFn, z_fn: Callable[[float], float],
                 max_length: int, chat_template_kwargs: dict | None = None, verify_pool=None, selector=None):
        self.cfg = cfg
        self.dataset = dataset
        self.history = history
        self.tokenizer = tokenizer
        self.generator = generator
        self.score_fn = score_fn
        self.z_fn = z_fn
        self.max_length = int(max_length)
        self.chat_template_kwargs = dict(chat_template_kwargs or {})
        self.verify_pool = verify_pool
        # which samples are candidates: by default the compatibility history (multi-epoch stages)
        self.selector = selector or PersistentSelector(history, cfg.fraction, cfg.visits_needed())

    # ------------------------------------------------------------------------------------------------------------
    def prompt_ids(self, index: int) -> list[int]:
        text = self.tokenizer.apply_chat_template(self.dataset.prompt_messages(index), add_generation_prompt=True,
                                                  tokenize=False, **self.chat_template_kwargs)
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def _z(self, nll):
        return None if nll is None else float(self.z_fn(nll))

    def score_unvisited(self, step: int, since: int) -> int:
        todo = self.history.not_visited_since(since)
        if not todo:
            return 0
        nll = self.score_fn([(i, None) for i in todo])
        pairs = [(i, self._z(v)) for i, v in zip(todo, nll, strict=True) if v is not None]
        return self.history.update([i for i, _ in pairs], [z for _, z in pairs], step, trained=False)

    # ------------------------------------------------------------------------------------------------------------
    def run(self, step: int, previous_round: int = 0) -> tuple[list[AuditRecord], dict[str, float]]:
        cfg = self.cfg
        start = time.perf_counter()
        metrics: dict[str, float] = {"rewrite/round": 1.0, "rewrite/failed": 0.0}
        lookahead = isinstance(self.selector, LookaheadSelector)
        scored = self.score_unvisited(step, previous_round) if cfg.score_unvisited and not lookahead else 0
        metrics["rewrite/scored_unvisited"] = float(scored)

        selected = self.selector(step)
        if lookahead:
            metrics["rewrite/lookahead_scored"] = float(self.selector.last_window)
        candidates = [i for i, _ in selected]
        chosen = draw(candidates, cfg.prob, cfg.seed, step)
        records: dict[int, AuditRecord] = {}
        for (index, z_sel), drawn in zip(selected, chosen, strict=True):
            info = self.dataset.extra_info(index)
            rec = AuditRecord(step=step, index=index, ema_z=self.history.ema_z[index],
                              visits=self.history.visits[index], drawn=drawn,
                              uid=info.get("uid"), source_index=info.get("index"),
                              old_text=self.dataset.target(index),
                              extra={"selected_by": self.selector.kind, "selection_z": z_sel})
            if not drawn:
                rec.reason = f"not drawn (prob={cfg.prob})"
            records[index] = rec
        todo = [i for i in candidates if records[i].drawn]
        if cfg.verify:
            for i in todo:
                if self.dataset.ground_truth(i) is None:
                    records[i].drawn = False
                    records[i].reason = "no reference answer to verify against (extra_info.ground_truth)"
            todo = [i for i in todo if records[i].drawn]
        metrics.update({"rewrite/candidates": float(len(candidates)), "rewrite/drawn": float(len(todo)),
                        "rewrite/generated": 0.0, "rewrite/verified": 0.0, "rewrite/accepted": 0.0})
        if todo:
            try:
                self._rewrite(step, todo, records, metrics)
            except Exception as exc:  # noqa: BLE001 - a failed round must never stop training
                logger.exception("cadft_verl: rewrite round after step %d failed; the original targets stay", step)
                print(f"[cadft-verl] rewrite round after step {step} FAILED ({_failure(exc)[len('round failed: '):]}); "
                      "all original targets kept, training continues", flush=True)
                metrics["rewrite/failed"] = 1.0
                for i in todo:
                    rec = records[i]
                    if rec.accepted:  # cannot happen (acceptance is the last step), kept for safety
                        continue
                    rec.reason = _failure(exc)
                    rec.new_text = None
        metrics["rewrite/time_s"] = time.perf_counter() - start
        return [records[i] for i in candidates], metrics

    def _rewrite(self, step, todo, records, metrics):
        cfg = self.cfg
        requests = []
        for k, i in enumerate(todo):
            prompt = self.prompt_ids(i)
            # the rendered prompt the policy was asked (chat template and special tokens included), for the audit
            records[i].extra["prompt"] = self.tokenizer.decode(prompt)
            budget = cfg.max_tokens or self.max_length
            budget = max(1, min(int(budget), self.max_length - len(prompt)))
            requests.append(GenRequest(index=i, prompt_ids=prompt, n=cfg.n, temperature=cfg.temperature,
                                       top_p=cfg.top_p, max_tokens=budget,
                                       seed=cfg.seed * 1_000_003 + step * 1009 + k * cfg.n))
        if self.generator is None:
            raise RuntimeError("no rewrite generator")
        gen_start = time.perf_counter()
        try:
            self.generator.prepare(step)
            texts = _bounded(lambda: self.generator.generate(requests, timeout=cfg.generation_timeout),
                             cfg.generation_timeout + min(30.0, 0.1 * cfg.generation_timeout + 2.0))
        finally:
            try:
                self.generator.release()
            except Exception:  # noqa: BLE001
                logger.exception("cadft_verl: releasing the rollout after a rewrite round failed")
        gen_time = time.perf_counter() - gen_start
        if len(texts) != len(requests):
            raise RuntimeError(f"generator returned {len(texts)} results for {len(requests)} requests")
        n_gen = sum(len(t) for t in texts)
        metrics["rewrite/generated"] = float(n_gen)
        metrics["rewrite/gen_time_s"] = gen_time
        gen_tokens = sum(len(self.tokenizer.encode(t, add_special_tokens=False)) for ts in texts for t in ts)
        metrics["rewrite/gen_tokens_per_s"] = gen_tokens / gen_time if gen_time > 0 else 0.0

        # verification (process pool, hard deadline per comparison)
        ok: dict[int, list[bool]] = {}
        reasons: dict[int, str] = {}
        pairs, where = [], []
        for i, cands in zip(todo, texts, strict=True):
            records[i].generated = len(cands)
            ok[i] = [bool(c and c.strip()) for c in cands]
            if cfg.verify:
                gold = self.dataset.ground_truth(i)
                for j, c in enumerate(cands):
                    if ok[i][j]:
                        pairs.append((c, gold))
                        where.append((i, j))
        if cfg.verify and pairs:
            results = verify_candidates(pairs, timeout=cfg.verify_timeout, pool=self.verify_pool)
            for (i, j), r in zip(where, results, strict=True):
                ok[i][j] = bool(r.get("acc"))
                if r.get("timed_out"):
                    reasons[i] = "verification timed out"
        for i in todo:
            records[i].verified = sum(ok[i])
        metrics["rewrite/verified"] = float(sum(sum(v) for v in ok.values())) if cfg.verify else 0.0

        # one no-grad pass: the current targets and every surviving candidate
        items: list[tuple[int, str | None]] = [(i, None) for i in todo]
        owners = []
        for i, cands in zip(todo, texts, strict=True):
            for j, c in enumerate(cands):
                if ok[i][j]:
                    items.append((i, c))
                    owners.append((i, j))
        nll = self.score_fn(items)
        old = dict(zip(todo, nll[: len(todo)], strict=True))
        best: dict[int, tuple[float, int]] = {}
        for (i, j), v in zip(owners, nll[len(todo):], strict=True):
            if v is not None and math.isfinite(v) and (i not in best or v < best[i][0]):
                best[i] = (v, j)
        # the originals' scores are visits too
        scored = [(i, self._z(old[i])) for i in todo if old[i] is not None]
        self.history.update([i for i, _ in scored], [z for _, z in scored], step, trained=False)

        after = []
        for i, cands in zip(todo, texts, strict=True):
            rec = records[i]
            rec.old_nll, rec.old_z = old[i], self._z(old[i])
            if i in best:
                v, j = best[i]
                rec.new_nll, rec.new_z, rec.new_text = v, self._z(v), cands[j]
                rec.accepted = True
                rec.reason = "accepted" if cfg.verify else "accepted (unverified)"
                self.dataset.set_target(i, cands[j])
                # a new target: a fresh history, not a candidate again until trained on with it
                self.history.reset(i)
                after.append(v)
            else:
                after.append(old[i])
                if not cands:
                    rec.reason = "nothing generated"
                elif not any(c and c.strip() for c in cands):
                    rec.reason = "only empty generations"
                elif cfg.verify and rec.verified == 0:
                    rec.reason = reasons.get(i, "no candidate's answer verifies against the reference")
                    rec.new_text = cands[0]
                else:
                    rec.reason = "candidates could not be scored (no response tokens)"
        metrics["rewrite/accepted"] = float(sum(1 for i in todo if records[i].accepted))
        metrics["rewrite/nll_before"] = _mean([old[i] for i in todo])
        metrics["rewrite/nll_after"] = _mean(after)
