"""Prompt templates shared by the SFT user turn and the RL prompt (one registry, selected by name)."""

from __future__ import annotations

from dataclasses import dataclass

BOXED_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."


@dataclass(frozen=True)
class PromptTemplate:
    name: str
    description: str
    system: str | None = None
    suffix: str = ""  # appended to the problem text in the user turn

    def messages(self, problem: str) -> list[dict[str, str]]:
        """Chat messages (system + user) that ask ``problem``; the SFT row appends the assistant turn."""
        msgs = []
        if self.system is not None:
            msgs.append({"role": "system", "content": self.system})
        msgs.append({"role": "user", "content": problem + self.suffix})
        return msgs


TEMPLATES: dict[str, PromptTemplate] = {
    t.name: t
    for t in (
        PromptTemplate(
            "qwen-boxed",
            "system 'You are a helpful assistant.'; user: problem + boxed instruction (METHOD.md section 6)",
            system="You are a helpful assistant.",
            suffix="\n" + BOXED_INSTRUCTION,
        ),
        PromptTemplate("boxed", "no system turn; user: problem + boxed instruction", suffix="\n" + BOXED_INSTRUCTION),
        PromptTemplate("plain", "no system turn; user: the problem only"),
    )
}
DEFAULT_TEMPLATE = "qwen-boxed"


def get_template(name: str) -> PromptTemplate:
    try:
        return TEMPLATES[name]
    except KeyError:
        raise ValueError(f"unknown template {name!r}; choose one of {sorted(TEMPLATES)}") from None
