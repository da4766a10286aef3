"""Prompt templates: the one module that both training data (the SFT user turn, the RL prompt) and evaluation use.

- ``qwen-boxed`` (default; the paper's prompt, METHOD.md section 6): system "You are a helpful assistant.", user: the
  problem followed by "\\nPlease reason step by step, and put your final answer within \\boxed{}.".
- ``boxed``: no system turn; user: the problem + the boxed instruction.
- ``chat`` (alias ``plain``): the bare problem as the only user message.
- ``raw-boxed`` / ``raw`` (evaluation only): no chat template; the problem (+ the boxed instruction) and a newline,
  for base models without a chat template.

A training row's prompt is ``template.messages(problem)``; evaluation renders the same messages with the model's
chat template (``template.render``). Adding a template = one :func:`register_template` call.
"""

from __future__ import annotations

from dataclasses import dataclass

BOXED_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."
DEFAULT_TEMPLATE = "qwen-boxed"


@dataclass(frozen=True)
class PromptTemplate:
    name: str
    user: str  # "{problem}" is replaced by the problem text (plain replace, braces in problems are safe)
    system: str | None = None
    use_chat_template: bool = True  # False: the user text is the whole prompt (no chat form, so not for training)
    description: str = ""

    def messages(self, problem: str) -> list[dict[str, str]]:
        """Chat messages (system + user) that ask ``problem``; an SFT row appends the assistant turn."""
        msgs = []
        if self.system is not None:
            msgs.append({"role": "system", "content": self.system})
        msgs.append({"role": "user", "content": self.user.replace("{problem}", problem)})
        return msgs

    def render(self, problem: str, tokenizer=None) -> str:
        """The prompt text a model is given: ``messages`` through the tokenizer's chat template (generation
        prompt added), or the bare user text for a template without a chat form."""
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


#: name (and alias) -> template; aliases map to the same object
TEMPLATES: dict[str, PromptTemplate] = {}


def register_template(template: PromptTemplate, aliases: tuple[str, ...] = ()) -> PromptTemplate:
    for key in (template.name, *aliases):
        if key in TEMPLATES:
            raise ValueError(f"prompt template {key!r} is already registered")
        TEMPLATES[key] = template
    return template


register_template(
    PromptTemplate(
        "qwen-boxed",
        "{problem}\n" + BOXED_INSTRUCTION,
        system="You are a helpful assistant.",
        description="Qwen2.5-Math prompt used by the paper: system 'You are a helpful assistant.'; user: problem + "
        "boxed instruction",
    )
)
register_template(
    PromptTemplate("boxed", "{problem}\n" + BOXED_INSTRUCTION, description="no system turn; user: problem + boxed "
                   "instruction")
)
register_template(
    PromptTemplate("chat", "{problem}", description="no system turn; user: the bare problem"), aliases=("plain",)
)
register_template(
    PromptTemplate(
        "raw-boxed",
        "{problem}\n" + BOXED_INSTRUCTION + "\n",
        use_chat_template=False,
        description="no chat template: problem + boxed instruction",
    )
)
register_template(
    PromptTemplate("raw", "{problem}\n", use_chat_template=False, description="no chat template: bare problem")
)


def chat_templates() -> list[str]:
    """Names usable for training data (templates with a chat form)."""
    return [k for k, t in TEMPLATES.items() if t.use_chat_template]


def get_template(name: str) -> PromptTemplate:
    if name not in TEMPLATES:
        raise ValueError(f"unknown prompt template {name!r}; available: {', '.join(TEMPLATES)}")
    return TEMPLATES[name]
