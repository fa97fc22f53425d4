"""A reward model as a reward term: any HF sequence-classification checkpoint scores each
(question, completion) with its own tokenizer and chat template, batched, read at the last
non-pad token. Runs as its own Ray actor in runs (CPU or GPU); a plain class here."""

from __future__ import annotations

from typing import Literal

import torch

from rlsys.models.catalog import resolve_model
from rlsys.models.dtypes import torch_dtype
from rlsys.models.reward_model_check import check_reward_model




class RewardModelScorer:
    """`score(questions, completions)`: the reward model's first logit for each pair."""

    def __init__(self, path: str, batch_size: int = 8, padding_side: Literal["left", "right"] = "right",
                 dtype: str = "float32", max_length: int | None = None, system_prompt: str | None = None) -> None:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        path = resolve_model(path)
        check_reward_model(path)
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.tokenizer.padding_side = padding_side
        self.batch_size, self.max_length, self.system_prompt = batch_size, max_length, system_prompt
        device = "cuda" if torch.cuda.is_available() else "cpu"
        model = AutoModelForSequenceClassification.from_pretrained(path, dtype=torch_dtype(dtype)).to(device)
        self.model = model.eval().requires_grad_(False)
        self.head = next((getattr(model, n) for n in ("score", "classifier") if hasattr(model, n)), None)

    def ping(self) -> bool:
        return True

    def text(self, question: str, completion: str) -> str:
        """The pair as the reward model reads it: its own chat template when it has one."""
        if self.tokenizer.chat_template:
            messages = [{"role": "user", "content": question}, {"role": "assistant", "content": completion}]
            if self.system_prompt:
                messages.insert(0, {"role": "system", "content": self.system_prompt})
            return self.tokenizer.apply_chat_template(messages, tokenize=False)
        return f"{question}\n{completion}"

    @torch.no_grad()
    def score(self, questions: list[str], completions: list[str]) -> list[float]:
        out: list[float] = []
        for start in range(0, len(completions), self.batch_size):
            texts = [self.text(q, c) for q, c in
                     zip(questions[start : start + self.batch_size], completions[start : start + self.batch_size])]
            out.extend(self._score_batch(texts))
        return out

    def _score_batch(self, texts: list[str]) -> list[float]:
        enc = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False,
                             truncation=self.max_length is not None, max_length=self.max_length)
        enc = {k: v.to(self.model.device) for k, v in enc.items()}
        mask = enc["attention_mask"]
        # The last real token by the attention mask (left or right padding alike), not by the
        # pad id, which may equal an end-of-text token inside the text.
        last = (torch.arange(mask.shape[1], device=mask.device)[None, :] * mask).argmax(-1)
        captured: list[torch.Tensor] = []
        hook = self.head.register_forward_hook(lambda _m, _i, o: captured.append(o)) if self.head is not None else None
        try:
            pooled = self.model(**enc).logits
        finally:
            if hook is not None:
                hook.remove()
        if captured and captured[0].dim() == 3:  # per-position scores of a decoder classifier
            return captured[0][torch.arange(len(texts)), last, 0].float().tolist()
        return pooled[:, 0].float().tolist()  # an encoder classifier pools by itself

    def __call__(self, prompts: list[str], completions: list[str], answers: list[str],
                 questions: list[str] | None = None, **_) -> list[float]:
        """As a reward function: scores (question, completion), the rendered prompt when no
        question is given."""
        return self.score(questions if questions is not None else prompts, completions)
