"""Log-probs of completion tokens under a causal LM, without full-vocabulary logits for prompts.

The decoder runs over whole sequences, but the output projection (for a 135M model a fifth
of the parameters, and the 49k-wide softmax) runs only on the hidden states that predict
completion tokens, in chunks, so no [B, T, V] tensor is ever built.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rlsys.models.sampling_filter import SamplingFilter, kept_tokens


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


# Config fields by which a causal LM post-processes its logits after the output projection.
# `output_logits` applies each; `check_logit_path` refuses a model whose forward does more.
LOGIT_POSTPROCESSING = ("logits_scaling", "logit_scale", "final_logit_softcapping")


def _text_config(model: torch.nn.Module):
    config = model.config
    return config.get_text_config() if hasattr(config, "get_text_config") else config


def output_logits(model: torch.nn.Module, states: torch.Tensor) -> torch.Tensor:
    """The model's logits for hidden states, in float32, with the post-processing its own
    forward applies: Granite's `logits / logits_scaling`, Cohere's `logits * logit_scale`,
    Gemma-2/3's `tanh(logits / cap) * cap` (`final_logit_softcapping`)."""
    logits = model.get_output_embeddings()(states).float()
    cfg = _text_config(model)
    if getattr(cfg, "logits_scaling", None):
        logits = logits / cfg.logits_scaling
    if getattr(cfg, "logit_scale", None) is not None:
        logits = logits * cfg.logit_scale
    cap = getattr(cfg, "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return logits


def completion_logprobs(
    model: torch.nn.Module,
    batch: PackedBatch,
    chunk_tokens: int = 1024,
    with_entropy: bool = False,
    temperature: float | torch.Tensor = 1.0,
    keep: SamplingFilter | None = None,
) -> TokenLogprobs:
    """Log-probs of the completion tokens of `batch` under softmax(logits / temperature),
    restricted to the tokens `keep` (vLLM's top-k / top-p) leaves, when given.

    `temperature` is one value or one per row ([B]): the temperature each completion was
    sampled at, so the learner measures the distribution vLLM sampled from (as TRL, veRL
    and OpenRLHF do); below 1 for a sharper, e.g. tempered, teacher.
    """
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
    return token_logprobs(model, states, targets, mask, rows[mask], chunk_tokens, with_entropy, temperature, keep)


def token_logprobs(model: torch.nn.Module, states: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor,
                   row_of: torch.Tensor, chunk_tokens: int, with_entropy: bool,
                   temperature: float | torch.Tensor, keep: SamplingFilter | None = None) -> TokenLogprobs:
    """log softmax(logits / temperature)[target] of the hidden `states` ([N, H]) that predict
    `targets` ([N]), scattered into `mask`'s [B, Tc] layout; `row_of` ([N]) is each state's
    row, for per-row temperatures. The output projection runs in chunks of `chunk_tokens`.

    With an active `keep` the softmax runs over the kept tokens only. A target outside them
    (the policy moved since it was sampled, or rounding at the edge of the nucleus) gets its
    logit minus the kept tokens' log-normaliser: the log-prob it would have if kept, finite,
    so that no ratio, KL or loss term meets -inf."""
    device = states.device
    temps = torch.as_tensor(temperature, dtype=torch.float32, device=device)
    scaled = bool((temps != 1.0).any())
    filtering = keep is not None and keep.active
    if temps.ndim == 1:
        temps = temps[row_of]  # one per selected token
    flat_lp, flat_ent = [], []
    for start in range(0, states.shape[0], chunk_tokens):
        logits = output_logits(model, states[start : start + chunk_tokens])
        if scaled:
            t = temps if temps.ndim == 0 else temps[start : start + chunk_tokens, None]
            logits = logits / t
        support = logits.masked_fill(~kept_tokens(logits, keep), float("-inf")) if filtering else logits
        lse = torch.logsumexp(support, dim=-1)
        tgt = targets[start : start + chunk_tokens]
        flat_lp.append(logits.gather(-1, tgt[:, None]).squeeze(-1) - lse)
        if with_entropy:
            with torch.no_grad():
                probs = torch.softmax(support, dim=-1)
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


@torch.no_grad()
def check_logit_path(model: torch.nn.Module, name: str, tolerance: float | None = None) -> float:
    """Refuse a model whose own forward computes logits differently from `output_logits`
    (a post-processing rlsys does not know): completion log-probs of a short sequence must
    equal a log-softmax of `model(...).logits`. Returns the largest difference (nats)."""
    device = next(model.parameters()).device
    vocab = model.get_output_embeddings().weight.shape[0]
    ids = torch.arange(3, 11, device=device) * 7919 % max(1, vocab - 1)
    batch = pack_sequences([ids[:3].tolist()], [ids[3:].tolist()], pad_id=0)
    got = completion_logprobs(model, batch).logprobs[0]
    full = torch.log_softmax(model(input_ids=ids[None]).logits[0].float(), dim=-1)
    want = full[2:-1].gather(-1, ids[3:, None]).squeeze(-1)
    diff = float((got - want).abs().max())
    dtype = next(model.parameters()).dtype
    limit = tolerance if tolerance is not None else (1e-3 if dtype == torch.float32 else 5e-2)
    if not diff <= limit:
        raise ValueError(
            f"{name}: rlsys's log-probs differ from the model's own forward by {diff:.3g} nats "
            f"(> {limit:g}): its architecture ({type(model).__name__}) post-processes logits in a way "
            f"rlsys does not apply (known: {', '.join(LOGIT_POSTPROCESSING)}). Please report the model type."
        )
    return diff
