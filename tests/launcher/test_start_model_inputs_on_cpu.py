"""A model the launch cannot start from is refused before any worker starts, naming the option, the folder and the
fix: a GGUF file, a folder without weights, an architecture that is not a causal LM, a tokenizer without the chat
template that stage 1 and RL apply."""

import json
import shutil

import pytest
from hydra import compose, initialize_config_module

from cadft_verl.eval.model_path import ModelPathError
from cadft_verl.launch.stages import check_inputs


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from cadft_verl.demo.tiny_model import build_tiny_model

    folder = tmp_path_factory.mktemp("tiny") / "model"
    build_tiny_model(str(folder))
    return folder


def _check(model, data, recipe="cadft"):
    with initialize_config_module(config_module="cadft_verl.recipes", version_base=None):
        cfg = compose("main", overrides=[f"recipe={recipe}", "profile=cpu", f"actor_rollout_ref.model.path={model}",
                                         f"cadft.data.train_files={data}"])
    check_inputs(cfg)


def test_start_models_a_launch_cannot_use_are_refused_naming_folder_and_fix(tmp_path, tiny):
    data = tmp_path / "train.parquet"
    data.write_bytes(b"")
    _check(tiny, data)  # the tiny model itself is fine

    gguf = tmp_path / "SmolLM2-135M-Instruct-Q8_0.gguf"
    gguf.write_bytes(b"GGUF")
    with pytest.raises(ModelPathError, match=r"actor_rollout_ref.model.path=.*\.gguf is a GGUF file, not a Hugging "
                                             r"Face model folder: load it with transformers"):
        _check(gguf, data)

    empty = tmp_path / "no_weights"
    shutil.copytree(tiny, empty)
    for weights in empty.glob("*.safetensors"):
        weights.unlink()
    with pytest.raises(ModelPathError, match=r"no_weights: the folder has config.json but no weights"):
        _check(empty, data)

    other = tmp_path / "classifier"
    shutil.copytree(tiny, other)
    config = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps(dict(config, architectures=["BertForSequenceClassification"])))
    with pytest.raises(ModelPathError, match=r"architecture \['BertForSequenceClassification'\] is not a causal"):
        _check(other, data)

    plain = tmp_path / "base_without_template"
    shutil.copytree(tiny, plain)
    (plain / "chat_template.jinja").unlink(missing_ok=True)
    tok = json.loads((plain / "tokenizer_config.json").read_text())
    tok.pop("chat_template", None)
    (plain / "tokenizer_config.json").write_text(json.dumps(tok))
    with pytest.raises(ModelPathError, match=r"base_without_template: the tokenizer has no chat template"):
        _check(plain, data)
