"""The SFT dataset stage 1 trains on, with per-sample indices and replaceable targets.

``RewritableSFTDataset`` wraps verl's SFT dataset (``MultiTurnSFTDataset`` or ``cadft.data.custom_cls``):
- every item carries ``dataset_index`` (its position in the dataset), which ``IndexedSFTCollator`` turns into a plain
  ``(batch,)`` int64 tensor next to verl's nested ``input_ids``/``loss_mask``: it is split with the batch by verl's
  data-parallel dispatch and micro-batching, so the loss can report which sample each per-sample statistic belongs to;
- ``set_target(index, text)`` replaces the content of the sample's last assistant turn (the training target) in the
  in-memory copy of the data; the next visit of that index trains on the new text. The data files are never written.
- ``targets()`` / ``restore(targets)`` give and take the ``{index: text}`` mapping saved with each checkpoint.
- ``to_frame()`` is the current (rewritten) dataset as a DataFrame, for the parquet written next to the checkpoint.
"""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import torch

from cadft_verl.losses.engine_loss import INDEX_KEY  # noqa: E402  ("dataset_index")


def _plain(value):
    from verl.utils.py_functional import convert_nested_value_to_list_recursive

    return convert_nested_value_to_list_recursive(value)


def _last_assistant(messages: list[dict]) -> int:
    for pos in range(len(messages) - 1, -1, -1):
        if messages[pos].get("role") == "assistant":
            return pos
    raise ValueError("the sample has no assistant turn to rewrite")


class RewritableSFTDataset(torch.utils.data.Dataset):
    def __init__(self, inner, messages_key: str = "messages"):
        self.inner = inner
        self.messages_key = messages_key
        frame = inner.dataframe.reset_index(drop=True)
        # messages as an object column of plain python lists, so single cells can be replaced
        column = np.empty(len(frame), dtype=object)
        for i, value in enumerate(frame[messages_key].tolist()):
            column[i] = _plain(value)
        self._column = column
        inner.dataframe = frame
        self._sync()
        self._original: dict[int, list[dict]] = {}
        self._targets: dict[int, str] = {}

    def _sync(self) -> None:
        # pandas (copy-on-write) may copy the array: always hand it the whole column again
        self.inner.dataframe[self.messages_key] = self._column.copy()

    def __len__(self) -> int:
        return len(self.inner)

    def __getitem__(self, index: int) -> dict:
        item = self.inner[index]
        item[INDEX_KEY] = int(index)
        return item

    # ------------------------------------------------------------------------------------------------------------
    def messages(self, index: int) -> list[dict]:
        return copy.deepcopy(self._column[index])

    def original_messages(self, index: int) -> list[dict]:
        return copy.deepcopy(self._original.get(index, self._column[index]))

    def prompt_messages(self, index: int) -> list[dict]:
        """The conversation before the target (last assistant turn): what the policy answers when rewriting."""
        msgs = self.messages(index)
        return msgs[: _last_assistant(msgs)]

    def target(self, index: int) -> str:
        msgs = self.messages(index)
        return msgs[_last_assistant(msgs)]["content"]

    def original_target(self, index: int) -> str:
        msgs = self.original_messages(index)
        return msgs[_last_assistant(msgs)]["content"]

    def extra_info(self, index: int) -> dict:
        frame = self.inner.dataframe
        if "extra_info" not in frame.columns:
            return {}
        value = _plain(frame["extra_info"].iat[index])
        return value if isinstance(value, dict) else {}

    def ground_truth(self, index: int):
        info = self.extra_info(index)
        if info.get("ground_truth") is not None:
            return info["ground_truth"]
        frame = self.inner.dataframe
        if "reward_model" in frame.columns:
            rm = _plain(frame["reward_model"].iat[index])
            if isinstance(rm, dict):
                return rm.get("ground_truth")
        return None

    # ------------------------------------------------------------------------------------------------------------
    def _with_target(self, messages: list[dict], text: str) -> list[dict]:
        msgs = copy.deepcopy(messages)
        msgs[_last_assistant(msgs)]["content"] = text
        return msgs

    def set_target(self, index: int, text: str) -> None:
        index = int(index)
        current = self._column[index]
        self._original.setdefault(index, copy.deepcopy(current))
        self._column[index] = self._with_target(current, text)
        self._targets[index] = text
        self._sync()

    def item_with_target(self, index: int, text: str | None) -> dict:
        """The tokenised sample ``index`` with ``text`` as its target (None: the current target); state unchanged."""
        if text is None:
            return self[index]
        saved = self._column[index]
        self._column[index] = self._with_target(saved, text)
        self._sync()
        try:
            return self[index]
        finally:
            self._column[index] = saved
            self._sync()

    def targets(self) -> dict[int, str]:
        return dict(self._targets)

    def restore(self, targets: dict) -> None:
        for index, text in sorted((int(k), v) for k, v in targets.items()):
            current = self._column[index]
            self._original.setdefault(index, copy.deepcopy(current))
            self._column[index] = self._with_target(current, text)
            self._targets[index] = text
        self._sync()

    def to_frame(self) -> pd.DataFrame:
        """The current dataset (rewritten targets in place) with plain python cells and a ``cadft_rewritten`` flag."""
        frame = self.inner.dataframe
        out = pd.DataFrame({c: [_plain(v) for v in frame[c].tolist()] for c in frame.columns})
        out["cadft_rewritten"] = [i in self._targets for i in range(len(frame))]
        return out

    def write_parquet(self, path: str) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(self.to_frame().to_dict("records")), path)


class IndexedSFTCollator:
    """verl's ``SFTTensorCollator`` plus the ``dataset_index`` column as a ``(batch,)`` int64 tensor."""

    def __init__(self, pad_mode):
        from verl.utils.dataset.dataset_utils import SFTTensorCollator

        self.inner = SFTTensorCollator(pad_mode)

    def __call__(self, items: list[dict]) -> dict:
        index = torch.tensor([int(it.pop(INDEX_KEY)) for it in items], dtype=torch.long)
        batch = self.inner(items)
        batch[INDEX_KEY] = index
        return batch
