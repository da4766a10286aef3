"""Every hub dataset name that a script or doc hands to the data CLI is one the data CLI's source registry knows.

The 8-GPU script once defaulted to a hub dataset that had been taken down, so a user's first launch failed there.
Hub names are read from the one registry of datasets, ``cadft_verl.tasks.TASKS`` (``Task.hub_name``).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# what users run or copy: the README, the docs, the launch and setup scripts
FILES = sorted([ROOT / "README.md", *ROOT.glob("docs/*.md"), *ROOT.glob("recipes/scripts/*.sh"),
                *ROOT.glob("scripts/*.sh"), *ROOT.glob("bench/*.sh")])
HUB = r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*"
# a hub name given to the data CLI: --input / --val-input VALUE ...
DIRECT = re.compile(rf"--(?:val-)?input[ =]\"?({HUB})")
# ... or the default of a shell variable that feeds --input / --val-input
FEEDS = [re.compile(r"--(?:val-)?input[ =]\"?\$\{?(\w+)"), re.compile(r"\$\{(\w+):\+--(?:val-)?input")]


def _defaults(text: str, var: str) -> set[str]:
    return set(re.findall(rf"\$\{{{var}:-({HUB})\}}", text))


def registry_hub_names() -> set[str]:
    from cadft_verl.tasks import TASKS as SOURCES

    return {s.hub_name for s in SOURCES.values() if s.hub_name}


def hub_names_used(text: str) -> set[str]:
    names = set(DIRECT.findall(text))
    for var in {v for pattern in FEEDS for v in pattern.findall(text)}:
        names |= _defaults(text, var)
    # local paths ("$DATA/math", "data/gsm8k/train.jsonl") are not hub names
    return {n for n in names if not Path(n).suffix and not (ROOT / n.split("/")[0]).exists()}


def test_the_scan_finds_hub_names_where_users_pass_them():
    text = ('MODEL="${MODEL:-Org/Some-Model}"\n'
            'python -m cadft_verl.data convert --source math --input "${MATH_TRAIN:-owner/Taken-Down}" --out d\n'
            'python -m cadft_verl.data convert --input AI-MO/NuminaMath-CoT --val-input data/x.jsonl\n'
            'V="${VAL:-other/Val-Set}"; python -m cadft_verl.data convert ${VAL:+--val-input "$VAL"}\n')
    assert hub_names_used(text) == {"owner/Taken-Down", "AI-MO/NuminaMath-CoT", "other/Val-Set"}


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_hub_dataset_in_scripts_and_docs_is_in_the_data_registry(path):
    unknown = hub_names_used(path.read_text()) - registry_hub_names()
    assert not unknown, (f"{path.relative_to(ROOT)} passes hub datasets the data CLI does not know: {sorted(unknown)}; "
                         f"known: {sorted(registry_hub_names())}")

