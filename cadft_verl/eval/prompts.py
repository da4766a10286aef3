"""Prompt templates for evaluation (the chosen template's name and text are recorded in every output).

- ``qwen-boxed`` (default; the paper's evaluation prompt): system "You are a helpful assistant.", user: the problem
  followed by "\\nPlease reason step by step, and put your final answer within \\boxed{}.", rendered with the
  model's chat template.
- ``chat``: the model's own chat template with the bare problem as the only user message.
- ``raw-boxed``: no chat template: problem + the boxed instruction + newline (for base models without a template).
- ``raw``: the bare problem + newline.
"""

from __future__ import annotations

from dataclasses import dataclass

BOXED_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."


@dataclass(frozen=True)
class PromptTemplate:
    name: str
    user: str  # "{problem}" is replaced by the problem text (plain replace, braces in problems are safe)
    system: str | None = None
    use_chat_template: bool = True
    description: str = ""

    def messages(self, problem: str) -> list[dict]:
        msgs = []
        if self.system is not None:
            msgs.append({"role": "system", "content": self.system})
        msgs.append({"role": "user", "content": self.user.replace("{problem}", problem)})
        return msgs

    def render(self, problem: str, tokenizer=None) -> str:
        if not self.use_chat_template:
            return self.user.replace("{problem}", problem)
        if tokenizer is None or not getattr(tokenizer, "chat_template", None):
            raise ValueError(
                f"template {self.name!r} needs the model's chat template, but the tokenizer has none; "
                "use --template raw-boxed for a model without one"
            )
        return tokenizer.apply_chat_template(self.messages(problem), tokenize=False, add_generation_prompt=True)

    def record(self) -> dict:
        return {
            "name": self.name,
            "system": self.system,
            "user": self.user,
            "use_chat_template": self.use_chat_template,
            "description": self.description,
        }


TEMPLATES: dict[str, PromptTemplate] = {
    t.name: t
    for t in [
        PromptTemplate(
            "qwen-boxed",
            "{problem}\n" + BOXED_INSTRUCTION,
            system="You are a helpful assistant.",
            description="Qwen2.5-Math evaluation prompt used by the paper (chat template)",
        ),
        PromptTemplate("chat", "{problem}", description="model's own chat template, bare problem"),
        PromptTemplate(
            "raw-boxed",
            "{problem}\n" + BOXED_INSTRUCTION + "\n",
            use_chat_template=False,
            description="no chat template: problem + boxed instruction",
        ),
        PromptTemplate("raw", "{problem}\n", use_chat_template=False, description="no chat template: bare problem"),
    ]
}


def get_template(name: str) -> PromptTemplate:
    if name not in TEMPLATES:
        raise ValueError(f"unknown prompt template {name!r}; available: {', '.join(TEMPLATES)}")
    return TEMPLATES[name]
