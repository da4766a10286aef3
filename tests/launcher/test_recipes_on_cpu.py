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


# ------------------------------------------------------------------------------------------------ one definition
import ast  # noqa: E402
import inspect  # noqa: E402
import re  # noqa: E402
from dataclasses import asdict, fields  # noqa: E402
from pathlib import Path  # noqa: E402

from omegaconf import OmegaConf  # noqa: E402

from cadft_verl.config import BLOCKS, block_class, load_blocks  # noqa: E402
from cadft_verl.losses.config import SECTIONS  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
RECIPES = ROOT / "recipes"
CONFIG = ROOT / "cadft_verl" / "config"


def launch_config(*overrides):
    with initialize_config_module(config_module="cadft_verl.recipes", version_base=None):
        return compose("main", overrides=list(overrides))


def sft_config(*overrides):
    with initialize_config_module(config_module="cadft_verl.config", version_base=None):
        return compose("sft_trainer", overrides=list(overrides))


def block(cfg, key) -> dict:
    """The YAML block at ``key`` of a composed config; the ``cadft`` block without its stage sections."""
    out = OmegaConf.to_container(OmegaConf.select(cfg, key), resolve=True)
    return {k: v for k, v in out.items() if k not in SECTIONS} if key == "cadft" else out


@pytest.mark.parametrize("profile", [None, "cpu"])
def test_yaml_blocks_and_their_dataclasses_cannot_drift(profile):
    """Each typed block composes, in both entry points, to exactly its dataclass's keys and defaults."""
    extra = [f"profile={profile}"] if profile else []
    launch, sft = launch_config(*extra), sft_config(*extra)
    for key in BLOCKS:
        assert block(launch, key) == asdict(block_class(key)()), key
    # the drop-in SFT stage's cadft block is the launch's loss options, nothing more
    assert OmegaConf.to_container(sft.cadft, resolve=True) == block(launch, "cadft")
    assert set(load_blocks(launch)) == set(BLOCKS) and set(load_blocks(sft)) == {"cadft"}


def _commented(source_lines: list[str], lineno: int) -> bool:
    """Whether the line before ``lineno`` (1-based) is a comment."""
    return source_lines[lineno - 2].strip().startswith("#")


@pytest.mark.parametrize("key", sorted(BLOCKS))
def test_every_field_has_a_comment_in_the_dataclass_and_the_yaml(key):
    cls = block_class(key)
    lines, start = inspect.getsourcelines(cls)
    body = ast.parse("".join(lines)).body[0].body
    for node in body:
        if isinstance(node, ast.AnnAssign):
            assert _commented(lines, node.lineno), f"{cls.__name__}.{node.target.id} has no comment above it"
    names = {f.name for f in fields(cls)}
    # the YAML keys of the block, found with their comment in the file that defines them
    path = CONFIG / "cadft" / "loss.yaml" if key == "cadft" else RECIPES / "main.yaml"
    text = path.read_text().splitlines()
    prefix = "" if key == "cadft" else key.split(".")
    found = set()
    stack: list[tuple[int, str]] = []
    for i, line in enumerate(text, start=1):
        m = re.match(r"^(\s*)([A-Za-z_]\w*)\s*:", line)
        if not m:
            continue
        indent, name = len(m.group(1)), m.group(2)
        while stack and stack[-1][0] >= indent:
            stack.pop()
        parents = [k for _, k in stack]
        stack.append((indent, name))
        if parents == (prefix or []) and name in names:
            found.add(name)
            assert _commented([*text, ""], i), f"{path.name}: {key}.{name} has no comment above it"
    assert found == names, f"{path.name}: {key} lacks {sorted(names - found)}"


def test_old_momentum_spellings_still_work_with_a_notice(capsys):
    from cadft_verl.history import HistoryConfig
    from cadft_verl.losses import LossConfig

    cfg = launch_config("cadft.momentum=0.8", "cadft.history.momentum=0.7")
    assert LossConfig.from_mapping(cfg.cadft).stats_momentum == 0.8
    assert HistoryConfig.from_mapping(cfg.cadft.history).z_momentum == 0.7
    assert LossConfig.from_mapping(sft_config("cadft.momentum=0.8").cadft).stats_momentum == 0.8
    err = capsys.readouterr().err
    assert "cadft.momentum is deprecated: use cadft.stats_momentum=0.8" in err
    assert "cadft.history.momentum is deprecated: use cadft.history.z_momentum=0.7" in err
    with pytest.raises(ValueError, match="set only cadft.stats_momentum"):
        LossConfig(stats_momentum=0.5, momentum=0.8)
    # the old key follows the new one, so code that still reads it gets the value in use, and no notice
    cfg = launch_config("cadft.stats_momentum=0.6", "cadft.history.z_momentum=0.4")
    assert cfg.cadft.momentum == 0.6 and cfg.cadft.history.momentum == 0.4
    assert LossConfig.from_mapping(cfg.cadft).momentum == 0.6 and HistoryConfig.from_mapping(cfg.cadft.history)
    assert "deprecated" not in capsys.readouterr().err


@pytest.mark.parametrize("override, message", [
    ("eval.k=0", "eval.k must be an int >= 1"),
    ("eval.temperature=-0.5", "eval.temperature must be >= 0"),
    ("+eval.temperture=0.5", "eval.temperture: unknown option"),
    ("eval.models=[base,final]", "eval.models"),
    ("eval.backend=tpu", "eval.backend"),
])
def test_eval_block_is_validated_naming_the_option(override, message):
    from cadft_verl.eval.config import EvalConfig

    with pytest.raises(ValueError, match=re.escape(message)):
        EvalConfig.from_config(launch_config(override))


def test_eval_run_settings_are_the_blocks():
    from cadft_verl.eval.config import EvalConfig

    ev = EvalConfig.from_config(launch_config("eval.limit=5", "eval.greedy=true"))
    kw = ev.run_kwargs()
    assert kw["limit"] == 5 and kw["greedy"] is True and kw["k"] == 16 and "benchmarks_dir" not in kw


def test_one_cpu_profile_for_both_entry_points():
    """The drop-in SFT stage's profile=cpu sets verl's engine and model exactly as the launch's does its actor's."""
    from cadft_verl.platform import cpu_overrides

    launch, sft = launch_config("profile=cpu"), sft_config("profile=cpu")
    actor, model = launch.actor_rollout_ref.actor, launch.actor_rollout_ref.model
    assert sft.engine.strategy == actor.fsdp_config.strategy == "fsdp2"
    assert sft.engine.mixed_precision == actor.fsdp_config.mixed_precision
    assert sft.model.override_config == model.override_config == {"attn_implementation": "sdpa"}
    assert sft.trainer.device == launch.trainer.device == "cpu"
    # verl's own SFT trainer gets the same settings as ++overrides
    assert "++engine.strategy=fsdp2" in cpu_overrides() and "++trainer.device=cpu" in cpu_overrides()


RECIPE_KEYS = {"defaults", "recipe_name", "stages", "cadft"}


@pytest.mark.parametrize("recipe", sorted(EXPECTED))
def test_recipes_hold_only_their_differences(recipe):
    """A recipe: its name, stage-1 loss, stages and defaults list (the RL stage is the rl group); short."""
    path = RECIPES / "recipe" / f"{recipe}.yaml"
    assert set(OmegaConf.load(path)) <= RECIPE_KEYS
    assert len(path.read_text().splitlines()) <= 20


def test_rl_group_chooses_the_rl_stage():
    ppo = OmegaConf.to_container(launch_config("recipe=cadft_then_ppo"))
    grpo_as_ppo = OmegaConf.to_container(launch_config("recipe=cadft_then_grpo", "rl=ppo"))
    assert grpo_as_ppo.pop("recipe_name") == "cadft_then_grpo" and ppo.pop("recipe_name") == "cadft_then_ppo"
    assert grpo_as_ppo == ppo
