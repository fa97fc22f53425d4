"""Greedy answers from a transformers model (batched, left-padded): how `make-teacher` and an
HF-backend teacher measure their own task accuracy without a vLLM engine."""

from __future__ import annotations

import torch


def stop_token_ids(tokenizer) -> list[int]:
    """EOS and, for chat models, the end-of-turn token: either ends an answer."""
    ids = {tokenizer.eos_token_id}
    for name in ("<|im_end|>", "<end_of_turn>", "<|eot_id|>"):
        tid = tokenizer.convert_tokens_to_ids(name)
        if isinstance(tid, int) and tid != tokenizer.unk_token_id:
            ids.add(tid)
    return sorted(i for i in ids if i is not None)


@torch.no_grad()
def greedy_answers(model, tokenizer, prompts: list[list[int]], max_new_tokens: int, batch_size: int = 32) -> list[str]:
    """The greedy completion text of every prompt (token ids), special tokens dropped."""
    stops = stop_token_ids(tokenizer)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stops[0]
    device = next(model.parameters()).device
    texts: list[str] = []
    for start in range(0, len(prompts), batch_size):
        chunk = prompts[start : start + batch_size]
        width = max(len(p) for p in chunk)
        ids = torch.tensor([[pad] * (width - len(p)) + list(p) for p in chunk], device=device)
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in chunk], device=device)
        out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens, do_sample=False,
                             eos_token_id=stops, pad_token_id=pad, temperature=None, top_p=None, top_k=None)
        texts += tokenizer.batch_decode(out[:, width:], skip_special_tokens=True)
    return texts
