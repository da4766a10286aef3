"""Bad LoRA input for stage 1 (cadft.model) is refused by the launch's input checks, before any worker starts, naming
the option: a rank below 0, lora_alpha 0, target modules that match nothing in the model, LoRA with an engine or
option that cannot take it, LoRA in a launch without stage 1."""

import pytest
from hydra import compose, initialize_config_module

from cadft_verl.launch.stages import check_inputs


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    from cadft_verl.demo.tiny_model import build_tiny_model

    folder = tmp_path_factory.mktemp("tiny")
    build_tiny_model(str(folder / "model"))
    (folder / "train.parquet").write_bytes(b"")
    return folder


def _check(inputs, *overrides, recipe="cadft"):
    with initialize_config_module(config_module="cadft_verl.recipes", version_base=None):
        cfg = compose("main", overrides=[f"recipe={recipe}", "profile=cpu",
                                         f"actor_rollout_ref.model.path={inputs / 'model'}",
                                         f"cadft.data.train_files={inputs / 'train.parquet'}",
                                         f"data.train_files={inputs / 'train.parquet'}",
                                         f"data.val_files={inputs / 'train.parquet'}", *overrides])
    check_inputs(cfg)


def test_lora_options_that_work_pass(inputs):
    _check(inputs, "cadft.model.lora_rank=8")
    _check(inputs, "cadft.model.lora_rank=4", "cadft.model.target_modules=[q_proj,v_proj]")
    _check(inputs, "cadft.model.lora_rank=0", "cadft.model.target_modules=[nothing]")  # no LoRA: not looked at


@pytest.mark.parametrize("overrides, message", [
    (["cadft.model.lora_rank=-1"], r"cadft.model.lora_rank must be an int >= 0 \(0: full fine-tuning\), got -1"),
    (["cadft.model.lora_rank=8", "cadft.model.lora_alpha=0"],
     r"cadft.model.lora_alpha=0: with cadft.model.lora_rank=8 it must be > 0"),
    (["cadft.model.lora_rank=8", "cadft.model.target_modules=[qproj]"],
     r"cadft.model.target_modules=\['qproj'\]: no module of the model at .* matches .*its linear modules are "
     r"down_proj, gate_proj, k_proj"),
    (["cadft.model.lora_rank=8", "+cadft.model.lora=8"], r"cadft.model.lora: unknown option"),
    (["cadft.model.lora_rank=8", "actor_rollout_ref.actor.strategy=megatron"],
     r"cadft.model.lora_rank=8 needs verl's FSDP engine, but actor_rollout_ref.actor.strategy=megatron"),
    (["cadft.model.lora_rank=8", "+actor_rollout_ref.model.lora_adapter_path=/some/adapter"],
     r"actor_rollout_ref.model.lora_adapter_path=/some/adapter would load another adapter"),
])
def test_bad_lora_input_is_refused_naming_the_option(inputs, overrides, message):
    with pytest.raises(ValueError, match=message):
        _check(inputs, *overrides)


def test_lora_in_a_launch_without_stage_1_is_refused(inputs):
    with pytest.raises(ValueError, match=r"cadft.model.lora_rank=8 configures stage 1 \(the warm start\), which this "
                                         r"launch does not run .* actor_rollout_ref.model.lora_rank"):
        _check(inputs, "cadft.model.lora_rank=8", recipe="grpo")
