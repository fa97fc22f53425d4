"""Prompt templates, applied through the tokenizer's chat template."""

from __future__ import annotations

XML_SYSTEM = (
    "Think step by step inside <reasoning> </reasoning> tags, then give only the final "
    "answer inside <answer> </answer> tags."
)
PLAIN_SYSTEM = "Solve the problem. End your reply with '#### ' followed by the final answer."


def system_text(template: str, system_prompt: str | None = None) -> str:
    """The system message of `data.template` (its answer-format instruction), or the user's own."""
    return system_prompt if system_prompt is not None else (XML_SYSTEM if template == "xml" else PLAIN_SYSTEM)


def prompt_messages(question: str, template: str, system_prompt: str | None = None) -> list[dict]:
    """`system_prompt=None` takes the template's instruction; "" sends no system message
    (the chat template's own default, if it has one, applies)."""
    system = system_text(template, system_prompt)
    messages = [{"role": "user", "content": question}]
    if system:
        messages.insert(0, {"role": "system", "content": system})
    return messages


def render_messages(tokenizer, messages: list[dict]) -> str:
    """Chat messages as the text the model continues (its chat template, else plain lines)."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return "\n\n".join(m["content"] for m in messages) + "\n"


def render_prompt(tokenizer, question: str, template: str, system_prompt: str | None = None) -> str:
    return render_messages(tokenizer, prompt_messages(question, template, system_prompt))


def prompt_token_ids(tokenizer, text: str) -> list[int]:
    """Token ids of a rendered prompt. A chat template writes its own special tokens; without
    one the tokenizer adds its BOS, which a base model such as Gemma needs (it repeats itself
    without it)."""
    return tokenizer(text, add_special_tokens=not getattr(tokenizer, "chat_template", None)).input_ids
