"""Every recipe and profile composes over verl's own ppo_trainer config, with the stages and loss it promises."""

import pytest
from hydra import compose, initialize_config_module

EXPECTED = {
    "cadft_then_grpo": (["cadft", "rl", "eval"], "cadft"),
    "cadft_then_ppo": (["cadft", "rl", "eval"], "cadft"),
    "dft_then_grpo": (["cadft", "rl", "eval"], "dft"),
    "sft_then_grpo": (["cadft", "rl", "eval"], "sft"),
    "cadft": (["cadft"], "cadft"),
    "grpo": (["rl", "eval"], None),
}


@pytest.mark.parametrize("profile", [None, "cpu", "gpu"])
@pytest.mark.parametrize("recipe", sorted(EXPECTED))
def test_recipe_composes(recipe, profile):
    overrides = [f"recipe={recipe}"] + ([f"profile={profile}"] if profile else [])
    with initialize_config_module(config_module="cadft_verl.recipes", version_base=None):
        cfg = compose("main", overrides=overrides + ["trainer.total_training_steps=7"])
    stages, loss = EXPECTED[recipe]
    assert list(cfg.stages) == stages
    if loss:
        assert cfg.cadft.loss == loss
    if recipe.endswith("ppo"):  # verl's GAE; its critic starts from the actor's model
        assert cfg.algorithm.adv_estimator == "gae" and cfg.actor_rollout_ref.rollout.n == 1
        assert cfg.critic.model.path == cfg.actor_rollout_ref.model.path and cfg.critic.optim.lr == 1e-5
    elif "rl" in stages:
        assert cfg.algorithm.adv_estimator == "grpo"
        assert cfg.actor_rollout_ref.rollout.n == 4
    if "rl" in stages:
        assert cfg.actor_rollout_ref.actor.optim.lr == 1e-6
        assert cfg.reward.custom_reward_function.path == "pkg://cadft_verl.reward"
        # stage 2's checkpoints carry a loadable HF export (what the eval stage loads)
        assert "hf_model" in cfg.actor_rollout_ref.actor.checkpoint.save_contents
    if "eval" in stages:
        assert list(cfg.eval.benchmarks) == ["paper"] and list(cfg.eval.models) == ["base", "stage1", "stage2"]
        assert cfg.eval.k == 16 and cfg.eval.backend == "auto" and cfg.eval.template == "qwen-boxed"
    # verl's keys stay overridable and the stage-1 defaults follow the DFT protocol
    assert cfg.trainer.total_training_steps == 7
    assert cfg.cadft.optim.lr == 5e-5 and list(cfg.cadft.optim.betas) == [0.9, 0.95]
    if profile == "cpu":
        assert cfg.trainer.device == "cpu" and cfg.actor_rollout_ref.actor.strategy == "fsdp2"
        assert cfg.ray_kwargs.ray_init.num_gpus == cfg.trainer.n_gpus_per_node
