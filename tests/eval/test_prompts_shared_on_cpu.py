"""Training data and evaluation ask a problem with the same prompt: one template object, one rendering."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from cadft_verl.data.convert import ConvertConfig, Converter, DataError, convert
from cadft_verl.eval import runner
from cadft_verl.math import prompts


def _src(tmp_path):
    p = tmp_path / "t.jsonl"
    p.write_text(json.dumps({"question": "What is {1+1}?", "response": "It is \\boxed{2}"}) + "\n")
    return str(p)


@pytest.mark.parametrize("name", ["qwen-boxed", "boxed", "chat", "plain"])
def test_training_and_evaluation_prompt_are_the_same_object(tmp_path, name):
    conv = Converter(ConvertConfig(out=str(tmp_path / "o"), input=_src(tmp_path), template=name,
                                   decontaminate=False, quiet=True))
    assert conv.template is runner.get_template(name) is prompts.get_template(name)


def test_rl_prompt_renders_as_the_evaluation_prompt(tmp_path):
    from cadft_verl.demo.tiny_model import build_tokenizer

    tok = build_tokenizer(["hello"], vocab_size=300)
    out = tmp_path / "o"
    convert(ConvertConfig(out=str(out), input=_src(tmp_path), decontaminate=False, progress=False, quiet=True))
    rl_prompt = list(pd.read_parquet(out / "rl/train.parquet").prompt[0])
    sft_user = list(pd.read_parquet(out / "sft/train.parquet").messages[0])[:-1]
    t = runner.get_template("qwen-boxed")
    assert [dict(m) for m in rl_prompt] == [dict(m) for m in sft_user] == t.messages("What is {1+1}?")
    rendered = tok.apply_chat_template([dict(m) for m in rl_prompt], tokenize=False, add_generation_prompt=True)
    assert rendered == t.render("What is {1+1}?", tok)
    assert rl_prompt[-1]["content"].endswith(prompts.BOXED_INSTRUCTION)


def test_template_without_chat_form_is_refused_for_training(tmp_path):
    with pytest.raises(DataError, match="raw-boxed: has no chat form"):
        Converter(ConvertConfig(out=str(tmp_path / "o"), input=_src(tmp_path), template="raw-boxed",
                                decontaminate=False, quiet=True))
