"""The one launch refuses a bad eval stage before any worker starts: an unknown benchmark name, listing what exists
(the other refusals, e.g. a NAME=PATH whose file is missing, are checked in-process in
tests/eval/test_eval_stage_on_cpu.py: the same check_inputs)."""

from launch import launch


def test_an_unknown_benchmark_stops_the_launch_before_any_worker_starts(tmp_path):
    model = tmp_path / "model"  # the input checks only look for the paths
    model.mkdir()
    data = model / "train.parquet"
    data.touch()
    args = ["recipe=cadft_then_grpo", "profile=cpu", f"actor_rollout_ref.model.path={model}",
            f"cadft.data.train_files={data}", f"data.train_files={data}", f"data.val_files={data}",
            f"trainer.default_local_dir={tmp_path}/run", "eval.benchmarks=[gsm8k,gsm9k]"]
    proc = launch(args, check=False, timeout=300)
    assert proc.returncode != 0
    assert "eval.benchmarks: unknown benchmark 'gsm9k'. Available: math500 (MATH-500)" in proc.stderr
    assert "presets: paper=" in proc.stderr
    assert "Started a local Ray instance" not in proc.stdout + proc.stderr
    assert not (tmp_path / "run").exists()
