"""Token in, token out: the ids the chat template puts around an environment's turns.

A trajectory grows by appending ids, never by re-rendering the conversation: the model's
turns are the ids vLLM sampled, and everything between them (the template's end of the
model's turn, the environment's messages, the header of the model's next turn) is rendered
on its own and appended. Those pieces are found by rendering probe conversations through the
tokenizer's chat template and taking the text each message adds; a template that rewrites
earlier turns when a new one comes (one that strips old reasoning, say) has no such pieces,
and is refused with the reason instead of being trained on ids that were never sampled.
"""

from __future__ import annotations

_PROBE_USER, _PROBE_ANSWER = "rlsys-probe-question", "rlsys-probe-answer"


class TurnTokens:
    """The ids that join turns for one tokenizer's chat template."""

    def __init__(self, tokenizer) -> None:
        if not getattr(tokenizer, "chat_template", None):
            raise ValueError("multi-turn rollouts need a tokenizer with a chat template (the model's turns "
                             "are delimited by it)")
        self.tokenizer = tokenizer
        self._base = [{"role": "user", "content": _PROBE_USER}, {"role": "assistant", "content": _PROBE_ANSWER}]
        rendered = self._render(self._base, generation_prompt=False)
        if _PROBE_ANSWER not in rendered:
            raise ValueError("the chat template does not show an assistant turn's text as given")
        self._base_text = rendered
        self.end_of_turn_ids = self._encode(rendered[rendered.rindex(_PROBE_ANSWER) + len(_PROBE_ANSWER):])

    def _render(self, messages: list[dict], generation_prompt: bool) -> str:
        return self.tokenizer.apply_chat_template(messages, add_generation_prompt=generation_prompt, tokenize=False)

    def _encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False).input_ids

    def prompt_ids(self, messages: list[dict]) -> list[int]:
        """The first prompt: the messages and the header of the model's first turn."""
        return self._encode(self._render(messages, generation_prompt=True))

    def close_model_turn(self, sampled_ids: list[int]) -> list[int]:
        """Ids that end the model's turn as the template ends it, after what it sampled: its
        stop token, when it sampled one, is not repeated (a turn cut by a stop string or the
        token budget gets the whole end of turn)."""
        end = self.end_of_turn_ids
        for k in range(min(len(end), len(sampled_ids)), 0, -1):
            if sampled_ids[-k:] == end[:k]:
                return end[k:]
        return end

    def observation_ids(self, messages: list[dict]) -> list[int]:
        """The environment's messages and the header of the model's next turn, as the
        template renders them after a finished model turn."""
        full = self._render(self._base + messages, generation_prompt=True)
        if not full.startswith(self._base_text):
            raise ValueError("the chat template renders earlier turns differently once a new message follows "
                             "(it rewrites the history), so the sampled ids cannot be kept: multi-turn "
                             "rollouts need a template that only appends")
        return self._encode(full[len(self._base_text):])
