"""Preference pairs as token ids: the prompt through the chat template (as the rollout
workers render prompts), each answer as the model would emit it, ending with EOS."""

from __future__ import annotations

from rlsys.data.preferences import PreferencePair
from rlsys.data.templates import prompt_token_ids, render_messages
from rlsys.records import PairItem


class PairEncoder:
    def __init__(self, tokenizer, system_prompt: str | None = None) -> None:
        self.tok, self.system_prompt = tokenizer, system_prompt

    def messages(self, pair: PreferencePair) -> list[dict]:
        if isinstance(pair.prompt, list):
            return pair.prompt
        messages = [{"role": "user", "content": pair.prompt}]
        if self.system_prompt:
            messages.insert(0, {"role": "system", "content": self.system_prompt})
        return messages

    def prompt_ids(self, pair: PreferencePair) -> list[int]:
        return prompt_token_ids(self.tok, render_messages(self.tok, self.messages(pair)))

    def answer_ids(self, text: str) -> list[int]:
        ids = self.tok(text, add_special_tokens=False).input_ids
        return ids + ([self.tok.eos_token_id] if self.tok.eos_token_id is not None else [])

    def encode(self, pair: PreferencePair) -> PairItem:
        return PairItem(self.prompt_ids(pair), self.answer_ids(pair.chosen), self.answer_ids(pair.rejected))

    def length(self, pair: PreferencePair) -> int:
        """Prompt plus the longer answer, in tokens (what `max_tokens` bounds)."""
        item = self.encode(pair)
        return len(item.prompt_ids) + max(len(item.chosen_ids), len(item.rejected_ids))
