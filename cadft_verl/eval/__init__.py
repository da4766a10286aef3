"""Math benchmark evaluation: benchmark registry/loaders, generation (vLLM or transformers), scoring (math-verify in
a process pool with per-item deadlines), metrics (avg@k, unbiased pass@k, maj@k with standard errors), reports
and the cold-start comparison table.

Entry points: ``python -m cadft_verl.eval run ...`` / ``compare ...`` / ``list`` (docs/eval.md), or
:func:`cadft_verl.eval.runner.run_eval` from Python. Heavy modules (torch, transformers, vllm, matplotlib) are
imported only when used.
"""

from cadft_verl.eval.benchmarks import Benchmark, BenchmarkError, Problem, benchmarks_dir, load_benchmark
from cadft_verl.eval.metrics import benchmark_metrics, majority_correct, mean_se, pass_at_k
from cadft_verl.math.prompts import TEMPLATES, get_template
from cadft_verl.tasks import BENCHMARKS as REGISTRY, PRESETS, Task as BenchmarkSpec, get_benchmark as get_spec

__all__ = [
    "PRESETS",
    "REGISTRY",
    "TEMPLATES",
    "Benchmark",
    "BenchmarkError",
    "BenchmarkSpec",
    "Problem",
    "benchmark_metrics",
    "benchmarks_dir",
    "get_spec",
    "get_template",
    "load_benchmark",
    "majority_correct",
    "mean_se",
    "pass_at_k",
]
