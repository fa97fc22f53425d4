"""Completion log-probs with each distinct prompt computed once (shared-prefix forward).

A GRPO group is `group_size` completions of one prompt, and the prompt is usually most of
every sequence. Here the decoder runs over the distinct prompts of a micro-batch once, their
key/value cache is repeated for every completion of that prompt, and the completions run on
top of it. With gradients on, the backward flows through the repeated cache into the prompt's
one forward, so the result (log-probs and gradients) equals the unshared computation up to
floating-point rounding, at a fraction of the FLOPs.

Two ways to run it. Packed (attention implementations that take a custom mask: sdpa and
eager): the distinct prompts and then all the completions are laid end to end in one row
with no padding, under a tree-shaped mask (a prompt token sees its prompt's earlier tokens; a
completion token sees its prompt and its own earlier tokens) and each token's true position,
so the linear layers run over real tokens only. Cached (any other implementation): prompts
right-padded to the longest distinct prompt run first, their key/value cache is repeated per
completion, and the right-padded completions run on top of it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rlsys.models.logprobs import TokenLogprobs, token_logprobs
from rlsys.models.sampling_filter import SamplingFilter


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
    """Whether the shared-prefix forward is exact for this model: full attention (not a sliding
    window, not recurrent), and a custom mask or else no gradient checkpointing."""
    cfg = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    if getattr(model, "is_gradient_checkpointing", False) and not packs_with_a_tree_mask(model):
        return False  # the cached layout needs the cache that checkpointing turns off
    if getattr(cfg, "sliding_window", None) or getattr(cfg, "layer_types", None) and any(
            t != "full_attention" for t in cfg.layer_types):
        return False
    return cfg.model_type not in {"mamba", "mamba2", "falcon_mamba", "jamba", "zamba", "rwkv"}


def packs_with_a_tree_mask(model: torch.nn.Module) -> bool:
    """Whether the attention takes a custom 4D mask (then the packed layout is used)."""
    return getattr(model.config, "_attn_implementation", None) in ("sdpa", "eager")


def shared_prefix_logprobs(model: torch.nn.Module, batch: SharedPrefixBatch, chunk_tokens: int = 1024,
                           with_entropy: bool = False, temperature: float | torch.Tensor = 1.0,
                           keep: SamplingFilter | None = None) -> TokenLogprobs:
    """Log-probs of every completion token, as `completion_logprobs` gives them for the
    unshared sequences, with each distinct prompt run through the decoder once."""
    device = next(model.parameters()).device
    mask = batch.completion_mask.to(device)
    predictors = _packed_predictors(model, batch, device) if packs_with_a_tree_mask(model) \
        else _cached_predictors(model, batch, device)
    c_ids = batch.completion_ids.to(device)
    rows = torch.arange(c_ids.shape[0], device=device)[:, None].expand_as(mask)
    return token_logprobs(model, predictors, c_ids[mask], mask, rows[mask], chunk_tokens, with_entropy,
                          temperature, keep)


def _packed_predictors(model: torch.nn.Module, batch: SharedPrefixBatch, device) -> torch.Tensor:
    """The hidden states that predict each real completion token (row-major), from one
    unpadded row under the tree mask."""
    p_lens, c_lens, prompt_of = batch.prompt_lens.tolist(), batch.completion_lens.tolist(), batch.prompt_of.tolist()
    ids, pos, owner, piece = [], [], [], []  # token, position, its prompt, its completion (-1: a prompt)
    starts = []  # where each prompt begins in the row
    for u, n in enumerate(p_lens):
        starts.append(len(ids))
        ids += batch.prompt_ids[u, :n].tolist()
        pos += range(n)
        owner += [u] * n
        piece += [-1] * n
    predictor_at = []  # the row position whose hidden state predicts each completion token
    for i, n in enumerate(c_lens):
        u, at = prompt_of[i], len(ids)
        ids += batch.completion_ids[i, :n].tolist()
        pos += range(p_lens[u], p_lens[u] + n)
        owner += [u] * n
        piece += [i] * n
        if n:  # an empty completion has no token to predict
            predictor_at += [starts[u] + p_lens[u] - 1] + list(range(at, at + n - 1))
    owner_t, piece_t = torch.tensor(owner, device=device), torch.tensor(piece, device=device)
    n = len(ids)
    causal = torch.ones(n, n, dtype=torch.bool, device=device).tril()
    visible = causal & (owner_t[:, None] == owner_t[None, :]) & (
        (piece_t[None, :] == -1) | (piece_t[None, :] == piece_t[:, None]))
    decoder = model.get_decoder()
    dtype = next(model.parameters()).dtype
    if model.config._attn_implementation == "eager":  # an additive mask there, a boolean one for sdpa
        attention = torch.zeros(n, n, dtype=dtype, device=device).masked_fill(~visible, torch.finfo(dtype).min)
    else:
        attention = visible
    hidden = decoder(input_ids=torch.tensor([ids], device=device), attention_mask=attention[None, None],
                     position_ids=torch.tensor([pos], device=device), use_cache=False).last_hidden_state[0]
    return hidden[torch.tensor(predictor_at, dtype=torch.long, device=device)]


def _cached_predictors(model: torch.nn.Module, batch: SharedPrefixBatch, device) -> torch.Tensor:
    """The same states from the padded prompts' cache repeated per completion."""
    from transformers import DynamicCache

    decoder = model.get_decoder()
    p_ids, p_lens = batch.prompt_ids.to(device), batch.prompt_lens.to(device)
    p_width = p_ids.shape[1]
    p_mask = (torch.arange(p_width, device=device)[None, :] < p_lens[:, None]).long()
    prompt_out = decoder(input_ids=p_ids, attention_mask=p_mask, use_cache=True, past_key_values=DynamicCache(),
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
    return predictors[mask]
