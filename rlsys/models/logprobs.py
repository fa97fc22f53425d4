"""Log-probs of completion tokens under a causal LM, without full-vocabulary logits for prompts.

The decoder runs over whole sequences, but the output projection (for a 135M model a fifth
of the parameters, and the 49k-wide softmax) runs only on the hidden states that predict
completion tokens, in chunks, so no [B, T, V] tensor is ever built.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class PackedBatch:
    """Right-padded token ids with the span of each completion."""

    input_ids: torch.Tensor  # [B, T]
    attention_mask: torch.Tensor  # [B, T]
    prompt_lens: torch.Tensor  # [B]
    completion_lens: torch.Tensor  # [B]

    @property
    def completion_mask(self) -> torch.Tensor:
        width = int(self.completion_lens.max().item()) if len(self.completion_lens) else 0
        return torch.arange(width)[None, :] < self.completion_lens[:, None]


def pack_sequences(prompts: list[list[int]], completions: list[list[int]], pad_id: int) -> PackedBatch:
    lengths = [len(p) + len(c) for p, c in zip(prompts, completions)]
    width = max(lengths)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    attn = torch.zeros((len(prompts), width), dtype=torch.long)
    for i, (p, c) in enumerate(zip(prompts, completions)):
        seq = list(p) + list(c)
        ids[i, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        attn[i, : len(seq)] = 1
    return PackedBatch(
        input_ids=ids,
        attention_mask=attn,
        prompt_lens=torch.tensor([len(p) for p in prompts], dtype=torch.long),
        completion_lens=torch.tensor([len(c) for c in completions], dtype=torch.long),
    )


@dataclass
class TokenLogprobs:
    logprobs: torch.Tensor  # [B, Tc], zero beyond each completion
    mask: torch.Tensor  # [B, Tc] bool
    entropy: torch.Tensor | None  # [B, Tc] or None


def completion_logprobs(
    model: torch.nn.Module,
    batch: PackedBatch,
    chunk_tokens: int = 1024,
    with_entropy: bool = False,
    temperature: float = 1.0,
) -> TokenLogprobs:
    """Log-probs of the completion tokens of `batch`; `temperature` rescales the logits (a
    sharper or flatter distribution, e.g. for a tempered teacher)."""
    device = next(model.parameters()).device
    input_ids = batch.input_ids.to(device)
    hidden = model.get_decoder()(
        input_ids=input_ids, attention_mask=batch.attention_mask.to(device), use_cache=False
    ).last_hidden_state
    mask = batch.completion_mask.to(device)
    width = mask.shape[1]
    offsets = torch.arange(width, device=device)[None, :]
    # Position t-1 predicts token t; clamp keeps padded slots in range (they are masked out).
    target_pos = (batch.prompt_lens.to(device)[:, None] + offsets).clamp(max=input_ids.shape[1] - 1)
    rows = torch.arange(input_ids.shape[0], device=device)[:, None].expand_as(target_pos)
    states = hidden[rows[mask], target_pos[mask] - 1]  # [N, H]
    targets = input_ids[rows[mask], target_pos[mask]]  # [N]
    head = model.get_output_embeddings()
    flat_lp, flat_ent = [], []
    for start in range(0, states.shape[0], chunk_tokens):
        logits = head(states[start : start + chunk_tokens]).float()
        if temperature != 1.0:
            logits = logits / temperature
        lse = torch.logsumexp(logits, dim=-1)
        tgt = targets[start : start + chunk_tokens]
        flat_lp.append(logits.gather(-1, tgt[:, None]).squeeze(-1) - lse)
        if with_entropy:
            with torch.no_grad():
                probs = torch.softmax(logits, dim=-1)
                flat_ent.append(lse - (probs * logits).sum(-1))
    logprobs = torch.zeros(mask.shape, dtype=torch.float32, device=device)
    if flat_lp:
        logprobs = logprobs.masked_scatter(mask, torch.cat(flat_lp))
    entropy = None
    if with_entropy:
        entropy = torch.zeros(mask.shape, dtype=torch.float32, device=device)
        if flat_ent:
            entropy = entropy.masked_scatter(mask, torch.cat(flat_ent))
    return TokenLogprobs(logprobs=logprobs, mask=mask, entropy=entropy)
