"""The variance view of CADFT (METHOD.md section 2), measured rather than assumed.

A small model is first fitted briefly to real GSM8K demonstrations, so that it has a notion of compatibility. It then
sees a batch that mixes held-out GSM8K demonstrations with a few incompatible ones: the same questions, with the
answer's words shuffled. For every sample i the per-sample DFT gradient g_i = grad of sum_t sg(p_t)(-log p_t) is
computed. The batch gradient is the sum over i of a_i g_i, with a_i = 1 (DFT) or a_i = w_i (CADFT). The script
reports the spread of the per-sample contributions a_i g_i (their second moment and their variance around the
mean), per-sample gradient norms by group, and the effective sample size (sum w)^2 / sum w^2.

    python bench/bench_variance.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time

import torch

from cadft_verl.losses import compatibility_weights
from cadft_verl.utils.paths import find_benchmarks_dir
from cadft_verl.demo.tiny_model import build_tiny_model
from tiny_lm import encode, token_logprobs

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=os.path.join(REPO, "bench", "results", "variance.json"))
    args = ap.parse_args()
    torch.manual_seed(0)
    random.seed(0)
    n_fit, fit_steps, n_good, n_bad = (64, 30, 12, 4) if args.quick else (256, 80, 48, 8)

    rows = [json.loads(line) for line in open(os.path.join(find_benchmarks_dir(), "gsm8k", "train.jsonl"))]
    fit, held = rows[:n_fit], rows[n_fit : n_fit + n_good + n_bad]
    work = tempfile.mkdtemp(prefix="bench_var_")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = build_tiny_model(os.path.join(work, "m"), texts=[r["question"] + r["answer"] for r in rows[:2000]],
                            vocab_size=1024, hidden_size=128, num_layers=2, num_heads=4, intermediate_size=256)
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    t0 = time.time()
    for step in range(fit_steps):  # plain NLL fit, batch of 8
        batch = random.sample(fit, 8)
        loss = 0.0
        for r in batch:
            ids, mask = encode(tok, r["question"], r["answer"])
            lp = token_logprobs(model, ids)
            m = mask[1:].float()
            loss = loss + -(lp * m).sum() / m.sum() / len(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()

    samples = []
    for i, r in enumerate(held):
        answer = r["answer"]
        bad = i >= n_good
        if bad:
            words = answer.split()
            random.shuffle(words)
            answer = " ".join(words)
        samples.append((r["question"], answer, bad))

    params = [p for p in model.parameters() if p.requires_grad]
    grads, nll = [], []
    for q, a, _ in samples:
        ids, mask = encode(tok, q, a)
        lp = token_logprobs(model, ids)
        m = mask[1:].float()
        dft = (torch.exp(lp.detach()) * -lp * m).sum()
        model.zero_grad()
        dft.backward()
        grads.append(torch.cat([p.grad.flatten() for p in params]).clone())
        nll.append(float((-lp.detach() * m).sum() / m.sum()))
    g = torch.stack(grads)  # [N, P]
    c = torch.tensor(nll)
    w = compatibility_weights(c)
    bad = torch.tensor([s[2] for s in samples])

    def spread(contrib):
        mean = contrib.mean(0, keepdim=True)
        return float((contrib**2).sum(1).mean()), float(((contrib - mean) ** 2).sum(1).mean())

    m2_dft, var_dft = spread(g)
    m2_cad, var_cad = spread(w.unsqueeze(1) * g)
    norms = g.norm(dim=1)
    result = {
        "setup": {"fit_rows": n_fit, "fit_steps": fit_steps, "compatible": n_good, "incompatible": n_bad,
                  "model": "Qwen2 2 layers, hidden 128", "seconds": time.time() - t0},
        "nll_mean": {"compatible": float(c[~bad].mean()), "incompatible": float(c[bad].mean())},
        "weight_mean": {"compatible": float(w[~bad].mean()), "incompatible": float(w[bad].mean())},
        "grad_norm_mean": {"compatible": float(norms[~bad].mean()), "incompatible": float(norms[bad].mean())},
        "second_moment": {"dft": m2_dft, "cadft": m2_cad, "ratio": m2_cad / m2_dft},
        "variance": {"dft": var_dft, "cadft": var_cad, "ratio": var_cad / var_dft},
        "ess": {"cadft": float(w.sum() ** 2 / (w**2).sum()), "n": len(samples)},
        "incompatible_in_top_nll": int(bad[torch.argsort(c, descending=True)[:n_bad]].sum()),
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    print(json.dumps(result, indent=2))
    print(f"results written to {args.out}")


if __name__ == "__main__":
    main()
