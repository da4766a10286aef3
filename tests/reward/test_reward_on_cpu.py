"""The math reward: verl signature, thread safety, hard timeouts, worker replacement, adversarial outputs."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from cadft_verl.reward import ScoringPool, compute_score, score_batch, score_response

VERL_KEYS = {"score", "acc", "has_answer", "timed_out", "pred"}
SLOW = "\\boxed{10^{10^{10^{10}}}}"  # sympy tries to evaluate the power tower: never finishes


@pytest.fixture(scope="module")
def pool():
    with ScoringPool(num_workers=2, timeout=10) as p:
        yield p


def test_compute_score_verl_dict():
    r = compute_score("lighteval/MATH", "... so the answer is \\boxed{\\frac{1}{2}}.", "0.5")
    assert set(r) == VERL_KEYS
    assert r["score"] == 1.0 and r["acc"] == 1.0 and r["has_answer"] == 1.0 and r["timed_out"] == 0.0
    assert r["pred"] == "\\frac{1}{2}"
    assert compute_score("x", "\\boxed{3}", "4")["score"] == 0.0
    no = compute_score("x", "I think it is 4", "4")
    assert no["score"] == 0.0 and no["has_answer"] == 0.0 and no["pred"] == ""
    # GSM8K style answer, float gold (AMC), list gold (OlympiadBench), verl's extra kwargs
    assert compute_score("openai/gsm8k", "so 3+4=7\n#### 1,000", "1000", extra_info={})["score"] == 1.0
    assert compute_score("amc23", "\\boxed{27}", 27.0)["score"] == 1.0
    assert compute_score("olympiadbench", "\\boxed{69, 84}", ["$69$,$84$"])["score"] == 1.0
    assert compute_score("x", "\\boxed{2}", "2", extra_info=None, reward_router_address=None)["score"] == 1.0


def test_verl_loads_it_as_custom_reward_function():
    from omegaconf import OmegaConf
    from verl.trainer.ppo.reward import get_custom_reward_fn

    cfg = OmegaConf.create(
        {"reward": {"custom_reward_function": {"path": "pkg://cadft_verl.reward", "name": "compute_score",
                                                "reward_kwargs": {"timeout": 5}}}}
    )
    fn = get_custom_reward_fn(cfg)
    r = fn(data_source="math", solution_str="\\boxed{x^2+2x+1}", ground_truth="(x+1)^2", extra_info={})
    assert r["score"] == 1.0


def test_from_many_threads():
    cases = [(f"step ... \\boxed{{{i}/2}}", str(i / 2)) for i in range(24)] + [("\\boxed{1}", "2")] * 8
    with ThreadPoolExecutor(8) as ex:
        out = list(ex.map(lambda c: compute_score("m", c[0], c[1]), cases))
    assert [o["score"] for o in out] == [1.0] * 24 + [0.0] * 8


def test_timeout_from_a_thread_then_recovers(pool):
    res = {}

    def work():
        t = time.perf_counter()
        res["r"] = score_response(SLOW, "5", timeout=1.0, pool=pool)
        res["t"] = time.perf_counter() - t

    th = threading.Thread(target=work)
    th.start()
    th.join(60)
    assert not th.is_alive()
    assert res["r"]["timed_out"] and res["r"]["score"] == 0.0 and not res["r"]["no_answer"]
    assert res["t"] < 15
    assert pool.stats["timeouts"] >= 1
    assert score_response("\\boxed{4}", "4", pool=pool)["score"] == 1.0  # the killed worker was replaced


def test_dead_idle_worker_is_replaced(pool):
    assert score_response("\\boxed{1}", "1", pool=pool)["score"] == 1.0
    for w in list(pool._idle):
        w.proc.kill()
        w.proc.wait()
    assert score_response("\\boxed{1}", "1", pool=pool)["score"] == 1.0


def test_worker_killed_mid_batch():
    with ScoringPool(num_workers=1, timeout=60) as p:
        started = []  # workers the pool starts; the batch's worker gets killed from outside 1 s into the slow item
        orig_spawn = p._spawn

        def spawn():
            w = orig_spawn()
            started.append(w)
            return w

        def kill_when_busy():  # not during its start-up, however slow that is on a loaded machine
            while not (started and started[0].ready and started[0].inflight):
                time.sleep(0.05)
            time.sleep(1.0)
            started[0].proc.kill()

        p._spawn = spawn
        threading.Thread(target=kill_when_busy, daemon=True).start()
        t = time.perf_counter()
        out = score_batch([(SLOW, "5"), ("\\boxed{2}", "2"), ("\\boxed{3}", "4")], pool=p, timeout=60)
        assert time.perf_counter() - t < 30
    assert out[0]["score"] == 0.0 and out[0]["error"] and "died" in out[0]["error"] and not out[0]["timed_out"]
    assert [o["score"] for o in out[1:]] == [1.0, 0.0]
    assert p.stats["crashes"] == 1


def test_score_batch_order_and_fields(pool):
    items = [
        ("\\boxed{1} and \\boxed{2}", "2"),  # last box counts
        ("\\boxed{1} and \\boxed{2}", "1"),
        ("nothing", "1"),
        {"response": "\\boxed{\\dfrac{3}{4}}", "gold": "0.75"},
        {"solution_str": "#### 12", "ground_truth": 12},
        ("\\boxed{5}", None),
    ]
    out = score_batch(items, pool=pool)
    assert [o["score"] for o in out] == [1.0, 0.0, 0.0, 1.0, 1.0, 0.0]
    assert [o["no_answer"] for o in out] == [False, False, True, False, False, False]
    assert out[5]["error"] == "no reference answer"
    for o in out:
        assert set(o) == {"score", "acc", "pred", "no_answer", "timed_out", "error"}


def test_in_process_mode():
    out = score_batch([("\\boxed{2}", "2"), ("\\boxed{3}", "2"), ("x", "2")], num_workers=0)
    assert [o["score"] for o in out] == [1.0, 0.0, 0.0]


def test_adversarial_outputs_never_hang():
    big = "9" * 10_000
    nested = "\\frac{" * 1000 + "1}{2}" * 1000  # deeply nested \frac (11k chars, goes to math-verify)
    items = [
        ("", "1"),  # empty
        ("The answer is 42.", "42"),  # no boxed answer
        ("\\boxed{41} wait, no: \\boxed{42}", "42"),  # several boxed: last counts
        ("\\boxed{\\frac{\\sqrt{\\frac{1}{4}}}{1}}", "\\frac{1}{2}"),  # nested braces
        ("\\boxed{" + big + "}", big),  # 10,000-digit number, right
        ("\\boxed{" + big[:-1] + "8}", big),  # 10,000-digit number, wrong
        ("\\boxed{" + nested + "}", "1"),
        ("\\boxed{" + "\\frac{" * 5000 + "1}{2}" * 5000 + "}", "1"),  # over the length cap
        ("\\boxed{42", "42"),  # unclosed
        ("\\boxed{" * 100_000, "1"),  # many unclosed
        ("x" * 1_000_000, "1"),  # 1e6-char response
        ("\\boxed{" + "1+" * 500_000 + "1}", "1"),  # 1e6-char answer
        ("a" * 999_990 + "\\boxed{7}", "7"),  # 1e6-char response with an answer at the end
        (SLOW, "5"),  # sympy power tower
        ("\\boxed{x^{" + "x^{" * 2000 + "}" * 2001 + "}", "1"),
        ("\\boxed{\\left(\\right)\\right)\\begin{matrix}&&\\\\}", "1"),  # malformed LaTeX
        ("\\boxed{}\\boxed{ }", "1"),
    ]
    t = time.perf_counter()
    out = score_batch(items, timeout=5, num_workers=2)
    wall = time.perf_counter() - t
    assert wall < 60, f"adversarial batch took {wall:.1f} s"
    scores = [o["score"] for o in out]
    assert scores[2] == 1.0 and scores[3] == 1.0 and scores[4] == 1.0 and scores[12] == 1.0
    assert scores[5] == 0.0 and scores[6] == 0.0 and scores[13] == 0.0
    assert out[0]["no_answer"] and out[1]["no_answer"] and out[8]["no_answer"] and out[9]["no_answer"]
    assert out[10]["no_answer"]
    assert out[7]["error"] == "answer too long"
    assert sum(o["score"] for o in out) == 4.0
