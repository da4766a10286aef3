"""Stage 1's delayed rewrite rounds (``cadft.rewrite``; CADFT only): which demonstrations are candidates (by their
compatibility history, or by a look-ahead over the samples still to come in a single-pass stage), the round itself
(``cadft_verl.rewrite.RewriteRound``: generate through the rollout replica, verify, accept), its audit files and
console line, and the rounds' place in the schedule (kept in ``cadft_state.json``)."""

from __future__ import annotations

import json
import os

from cadft_verl.rewrite import LookaheadSelector, PersistentSelector, RewriteRound, save_rewrite_state


class RewriteRounds:
    def __init__(self, plan, dataset, history, order, tokenizer, data_cfg, loss_cfg, controller, stage_dir: str):
        self.plan, self.dataset, self.history, self.order = plan, dataset, history, order
        self.tokenizer, self.data_cfg, self.loss_cfg, self.controller = tokenizer, data_cfg, loss_cfg, controller
        self.stage_dir = stage_dir
        self.audit: list[dict] = []
        self.last_round = 0

    # the rounds' place in the schedule: ``cadft_state.json``'s "rewrite"
    def state_dict(self) -> dict:
        return {"last_round": self.last_round, "rounds": self.plan.schedule.rounds()}

    def load_state_dict(self, state: dict) -> None:
        self.last_round = int(state.get("last_round", 0))

    def _selector(self, scorer):
        cfg, plan = self.plan.rewrite_cfg, self.plan
        if not plan.single_pass:
            def visited_later(step: int) -> set[int]:
                return {i for s in range(step + 1, plan.total_steps + 1) for i in self.order.indices(s)}

            return PersistentSelector(self.history, cfg.fraction, cfg.visits_needed(plan.epochs), visited_later)

        def upcoming(step: int) -> list[int]:
            # the samples trained before the next round (or the stage's end); never past the stage's last step
            later = [s for s in plan.schedule.rounds() if s > step]
            limit = ((later[0] if later else plan.total_steps) - step) * plan.batch_size
            if cfg.lookahead:
                limit = min(int(cfg.lookahead), (plan.total_steps - step) * plan.batch_size)
            return self.order.upcoming(step, limit)

        return LookaheadSelector(self.history, cfg.fraction, upcoming, self._score(scorer), self.loss_cfg.zscore,
                                 self.loss_cfg.eps)

    def _score(self, scorer):
        return lambda items: scorer.score(self.dataset, items)

    def run(self, step: int, workers) -> dict:
        """The round after ``step``: returns its metrics, prints its console line, writes its audit."""
        rnd = RewriteRound(self.plan.rewrite_cfg, self.dataset, self.history, self.tokenizer, workers.generator,
                           self._score(workers.scorer), self.controller.z_of,
                           max_length=int(self.data_cfg.max_length),
                           chat_template_kwargs=dict(self.data_cfg.get("apply_chat_template_kwargs") or {}),
                           selector=self._selector(workers.scorer))
        records, metrics = rnd.run(step, previous_round=self.last_round)
        rows = [json.loads(r.to_json()) for r in records]
        self.audit.extend(rows)
        self.last_round = step
        save_rewrite_state(os.path.join(self.stage_dir, "rewrite_rounds", f"after_step_{step}"), self.dataset, rows,
                           write_dataset=False)
        accepted = int(metrics.get("rewrite/accepted", 0))
        print(f"[cadft-verl] rewrite round after step {step}: {int(metrics['rewrite/candidates'])} candidates, "
              f"{int(metrics['rewrite/drawn'])} drawn, {int(metrics['rewrite/generated'])} generated, "
              f"{int(metrics['rewrite/verified'])} verified, {accepted} accepted"
              + (" (FAILED: originals kept)" if metrics.get("rewrite/failed") else "")
              + f" in {metrics['rewrite/time_s']:.1f} s", flush=True)
        return metrics
