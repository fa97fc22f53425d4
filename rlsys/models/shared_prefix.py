"""Completion log-probs with each distinct prompt computed once (shared-prefix forward).

A GRPO group is `group_size` completions of one prompt, and the prompt is usually most of
every sequence. Here the decoder runs over the distinct prompts of a micro-batch once, their
key/value cache is repeated for every completion of that prompt, and the completions run on
top of it. With gradients on, the backward flows through the repeated cache into the prompt's
one forward, so the result (log-probs and gradients) equals the unshared computation up to
floating-point rounding, at a fraction of the FLOPs.

Layout: prompts are right-padded to the longest distinct prompt, completions right-padded to
the longest completion; padding keys are masked and positions are given explicitly, so a
short prompt's completion continues at the prompt's true length.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rlsys.models.logprobs import TokenLogprobs, token_logprobs


@dataclass
class SharedPrefixBatch:
    prompt_ids: torch.Tensor  # [U, P] distinct prompts, right-padded
    prompt_lens: torch.Tensor  # [U]
    completion_ids: torch.Tensor  # [B, C] right-padded
    completion_lens: torch.Tensor  # [B]
    prompt_of: torch.Tensor  # [B] row -> distinct prompt index

    @property
    def completion_mask(self) -> torch.Tensor:
        width = self.completion_ids.shape[1]
        return torch.arange(width)[None, :] < self.completion_lens[:, None]

    @property
    def tokens_computed(self) -> int:
        """Token positions the decoder runs over (padding included)."""
        return self.prompt_ids.numel() + self.completion_ids.numel()


def pack_shared(prompts: list[list[int]], completions: list[list[int]], pad_id: int) -> SharedPrefixBatch:
    keys: dict[tuple[int, ...], int] = {}
    prompt_of = [keys.setdefault(tuple(p), len(keys)) for p in prompts]
    distinct = list(keys)
    p_width = max(len(p) for p in distinct)
    c_width = max(1, max(len(c) for c in completions))
    p_ids = torch.full((len(distinct), p_width), pad_id, dtype=torch.long)
    for u, p in enumerate(distinct):
        p_ids[u, : len(p)] = torch.tensor(p, dtype=torch.long)
    c_ids = torch.full((len(completions), c_width), pad_id, dtype=torch.long)
    for i, c in enumerate(completions):
        c_ids[i, : len(c)] = torch.tensor(list(c), dtype=torch.long)
    return SharedPrefixBatch(
        prompt_ids=p_ids, prompt_lens=torch.tensor([len(p) for p in distinct], dtype=torch.long),
        completion_ids=c_ids, completion_lens=torch.tensor([len(c) for c in completions], dtype=torch.long),
        prompt_of=torch.tensor(prompt_of, dtype=torch.long))


def supports_shared_prefix(model: torch.nn.Module) -> bool:
    """Whether the shared-prefix forward is exact for this model: a plain (not sliding-window,
    not recurrent) KV cache and no gradient checkpointing (which turns the cache off)."""
    cfg = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    if getattr(model, "is_gradient_checkpointing", False):
        return False
    if getattr(cfg, "sliding_window", None) or getattr(cfg, "layer_types", None) and any(
            t != "full_attention" for t in cfg.layer_types):
        return False
    return cfg.model_type not in {"mamba", "mamba2", "falcon_mamba", "jamba", "zamba", "rwkv"}


def shared_prefix_logprobs(model: torch.nn.Module, batch: SharedPrefixBatch, chunk_tokens: int = 1024,
                           with_entropy: bool = False, temperature: float | torch.Tensor = 1.0) -> TokenLogprobs:
    """Log-probs of every completion token, as `completion_logprobs` gives them for the
    unshared sequences, with each distinct prompt run through the decoder once."""
    from transformers import DynamicCache

    device = next(model.parameters()).device
    decoder = model.get_decoder()
    p_ids, p_lens = batch.prompt_ids.to(device), batch.prompt_lens.to(device)
    p_width = p_ids.shape[1]
    p_mask = (torch.arange(p_width, device=device)[None, :] < p_lens[:, None]).long()
    cache = DynamicCache()
    prompt_out = decoder(input_ids=p_ids, attention_mask=p_mask, use_cache=True, past_key_values=cache,
                         position_ids=torch.arange(p_width, device=device)[None, :].expand_as(p_ids))
    cache = prompt_out.past_key_values
    rows_prompt = batch.prompt_of.to(device)
    cache.batch_select_indices(rows_prompt)  # each row gets its prompt's keys and values (differentiable)
    c_ids = batch.completion_ids.to(device)
    c_width = c_ids.shape[1]
    mask = batch.completion_mask.to(device)
    positions = p_lens[rows_prompt][:, None] + torch.arange(c_width, device=device)[None, :]
    full_mask = torch.cat([p_mask[rows_prompt], mask.long()], dim=1)
    hidden = decoder(input_ids=c_ids, attention_mask=full_mask, position_ids=positions,
                     past_key_values=cache, use_cache=True).last_hidden_state  # [B, C, H]
    # Token 0 of a completion is predicted by its prompt's last real position; token t by t-1.
    first = prompt_out.last_hidden_state[rows_prompt, p_lens[rows_prompt] - 1]  # [B, H]
    predictors = torch.cat([first[:, None], hidden[:, :-1]], dim=1)  # [B, C, H]
    rows = torch.arange(c_ids.shape[0], device=device)[:, None].expand_as(mask)
    return token_logprobs(model, predictors[mask], c_ids[mask], mask, rows[mask], chunk_tokens, with_entropy,
                          temperature)
