"""Learner: one DeepSpeed data-parallel rank that trains the policy and broadcasts its weights.

K ranks run as K Ray actors (see rlsys.distributed.actors); each gets a shard of every
batch. Rank 0 also owns the weight broadcast to the rollout engines. On the CPU, DeepSpeed
runs over gloo with fp32 master weights and bf16 autocast for the passes; on GPUs over NCCL
with DeepSpeed's bf16 mode.
"""

from __future__ import annotations

import math
import os
import random
import time
from contextlib import nullcontext

import torch

from rlsys.algorithms.losses import grpo_loss, lm_loss, mix_lm_loss
from rlsys.config import GRPOConfig, LearnerConfig, LPTConfig
from rlsys.transport.weight_sync import (
    SyncPlan, broadcast, create_group, pack_bucket, plan_buckets, tensor_checksum, unpack_bucket,
)
from rlsys.models.logprobs import PackedBatch, check_logit_path, completion_logprobs, pack_sequences
from rlsys.types import TrainItem

__all__ = ["Learner", "TrainItem", "cosine_with_warmup", "micro_batches"]

DTYPES = {"bfloat16": torch.bfloat16, "float32": torch.float32, "float16": torch.float16}


def cosine_with_warmup(step: int, total: int, warmup: int, min_ratio: float) -> float:
    """LR multiplier: linear warmup to 1, then cosine decay to `min_ratio` at `total`."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def micro_batches(indices: list[int], lengths: list[int], size: int) -> list[list[int]]:
    """Split `indices` into chunks of `size`, sorted by length so padding stays small."""
    ordered = sorted(indices, key=lambda i: lengths[i])
    return [ordered[i : i + size] for i in range(0, len(ordered), size)]


class Learner:
    def __init__(
        self,
        model_path: str,
        learner: LearnerConfig,
        algorithm: GRPOConfig,
        dtype: str,
        rank: int,
        world_size: int,
        master_addr: str,
        master_port: int,
        total_optimizer_steps: int,
        seed: int = 0,
        lpt: LPTConfig | None = None,
        max_new_tokens: int | None = None,
    ) -> None:
        self.cfg, self.algo, self.rank, self.world_size = learner, algorithm, rank, world_size
        self.seed, self.max_new_tokens = seed, max_new_tokens
        self.cuda = torch.cuda.is_available() and learner.num_gpus > 0
        if not self.cuda:
            os.environ.setdefault("DS_ACCELERATOR", "cpu")
        os.environ.update(
            MASTER_ADDR=master_addr,
            MASTER_PORT=str(master_port),
            RANK=str(rank),
            WORLD_SIZE=str(world_size),
            LOCAL_RANK="0",
        )
        torch.set_num_threads(learner.torch_threads or os.cpu_count() or 1)
        torch.manual_seed(seed)
        import deepspeed
        from transformers import AutoModelForCausalLM, AutoTokenizer

        deepspeed.init_distributed(dist_backend="nccl" if self.cuda else "gloo")
        self.device = torch.device("cuda", torch.cuda.current_device()) if self.cuda else torch.device("cpu")
        self.dtype = DTYPES[dtype]
        self.tokenizer = AutoTokenizer.from_pretrained(model_path)
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
        check_logit_path(model.eval(), model_path)
        model.train()
        if learner.gradient_checkpointing:
            model.gradient_checkpointing_enable()
            model.config.use_cache = False
        self.reference = None
        if algorithm.kl_beta > 0:
            self.reference = AutoModelForCausalLM.from_pretrained(model_path, dtype=self.dtype).to(self.device)
            self.reference.eval().requires_grad_(False)
        per_rank = learner.mini_batch_size // world_size
        ds_config = {
            "train_micro_batch_size_per_gpu": learner.micro_batch_size,
            "gradient_accumulation_steps": per_rank // learner.micro_batch_size,
            "gradient_clipping": learner.grad_clip,
            "zero_optimization": {"stage": learner.zero_stage},
            "optimizer": {
                "type": "AdamW",
                "params": {"lr": learner.lr, "weight_decay": learner.weight_decay, "torch_adam": True},
            },
            "zero_allow_untested_optimizer": True,
            "steps_per_print": 10**9,
            "wall_clock_breakdown": False,
        }
        # On GPUs DeepSpeed's bf16 mode keeps bf16 weights; on the CPU fp32 master
        # weights with bf16 autocast are what ran fastest and stably.
        self.autocast_dtype = None
        if self.dtype != torch.float32:
            if self.cuda:
                ds_config["bf16" if self.dtype == torch.bfloat16 else "fp16"] = {"enabled": True}
            else:
                self.autocast_dtype = self.dtype
        total = max(1, total_optimizer_steps)

        def scheduler(optimizer):
            return torch.optim.lr_scheduler.LambdaLR(
                optimizer, lambda s: cosine_with_warmup(s, total, learner.warmup_steps, learner.min_lr_ratio)
            )

        self.engine, _, _, _ = deepspeed.initialize(
            model=model, model_parameters=[p for p in model.parameters() if p.requires_grad],
            config=ds_config, lr_scheduler=scheduler,
        )
        self.sync_group = None
        self.steps = 0
        self.lpt = lpt if lpt is not None and lpt.coef > 0 else None
        self.lm_stream = None
        if self.lpt is not None:
            from rlsys.data.text import BlockStream, load_texts, token_blocks

            blocks = token_blocks(load_texts(self.lpt.source, self.lpt.text_field), self.tokenizer, self.lpt.block_tokens)
            self.lm_stream = BlockStream(blocks, rank, world_size)

    # ----- passes -------------------------------------------------------------------
    def _autocast(self):
        if self.autocast_dtype is None:
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)

    def _pack(self, items: list[TrainItem], idx: list[int]) -> PackedBatch:
        return pack_sequences([items[i].prompt_ids for i in idx], [items[i].completion_ids for i in idx], self.pad_id)

    def _temperatures(self, items: list[TrainItem], idx: list[int]) -> torch.Tensor:
        return torch.tensor([items[i].temperature for i in idx], dtype=torch.float32)

    @torch.no_grad()
    def _score(self, model: torch.nn.Module, items: list[TrainItem]) -> list[torch.Tensor]:
        lengths = [len(it.prompt_ids) + len(it.completion_ids) for it in items]
        out: list[torch.Tensor | None] = [None] * len(items)
        for idx in micro_batches(list(range(len(items))), lengths, self.cfg.micro_batch_size):
            batch = self._pack(items, idx)
            with self._autocast():
                lp = completion_logprobs(model, batch, self.cfg.logprob_chunk_tokens,
                                         temperature=self._temperatures(items, idx))
            for row, i in enumerate(idx):
                out[i] = lp.logprobs[row, : len(items[i].completion_ids)].float().cpu()
        return out  # type: ignore[return-value]

    def logprobs(self, items: list[TrainItem], reference: bool = False) -> list[torch.Tensor]:
        """Per-token log-probs of each item's completion at its sampling temperature."""
        if reference and self.reference is None:
            raise ValueError("no reference model: algorithm.kl_beta is 0")
        model = self.reference if reference else self.engine.module
        was_training = model.training
        model.eval()
        try:
            return self._score(model, items)
        finally:
            model.train(was_training)

    def train_on_batch(self, items: list[TrainItem]) -> dict[str, float]:
        """Reference pass, old-policy pass, then `epochs` passes of mini-batch GRPO updates.

        Returns this rank's statistics; `merge_rank_stats` combines those of every rank."""
        timings = {}
        t0 = time.perf_counter()
        ref = self.logprobs(items, reference=True) if self.reference is not None else None
        timings["time/reference"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        old = self.logprobs(items)
        timings["time/old_logprobs"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        stats = self._train(items, old, ref)
        timings["time/train"] = time.perf_counter() - t0
        return {**stats, **timings, **_mismatch(items, old)}

    def _global_counts(self, items: list[TrainItem], mini: list[int]) -> tuple[float, float]:
        """Completion tokens and sequences of this optimiser step's mini-batch on all ranks."""
        counts = torch.tensor([float(sum(len(items[i].completion_ids) for i in mini)), float(len(mini))],
                              dtype=torch.float64)
        if self.world_size > 1:
            torch.distributed.all_reduce(counts)
        return max(1.0, float(counts[0])), max(1.0, float(counts[1]))

    def _train(self, items: list[TrainItem], old: list[torch.Tensor], ref: list[torch.Tensor] | None) -> dict[str, float]:
        cfg, algo = self.cfg, self.algo
        per_rank_mini = cfg.mini_batch_size // self.world_size
        if len(items) % per_rank_mini:
            raise ValueError(f"rank {self.rank} got {len(items)} items, not a multiple of {per_rank_mini}")
        lengths = [len(it.prompt_ids) + len(it.completion_ids) for it in items]
        rng = random.Random(self.seed * 1000003 + self.steps)
        self.engine.train()
        weighted: dict[str, float] = {}  # token-weighted sums
        tokens = 0.0
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}

        def add(key: str, value: float) -> None:
            sums[key] = sums.get(key, 0.0) + value
            counts[key] = counts.get(key, 0) + 1

        coef = self.lpt.coef if self.lpt is not None else 0.0
        for _ in range(cfg.epochs):
            order = list(range(len(items)))
            rng.shuffle(order)
            for start in range(0, len(order), per_rank_mini):
                mini = order[start : start + per_rank_mini]
                total_tokens, total_seqs = self._global_counts(items, mini)
                micros = micro_batches(mini, lengths, cfg.micro_batch_size)
                # DeepSpeed divides each backward by the accumulation steps and averages
                # gradients over ranks; the shares below are already of the global loss.
                undo = float(len(micros) * self.world_size)
                mini_loss = 0.0
                for idx in micros:
                    batch = self._pack(items, idx)
                    width = int(batch.completion_lens.max())
                    old_lp = _pad([old[i] for i in idx], width).to(self.device)
                    ref_lp = _pad([ref[i] for i in idx], width).to(self.device) if ref is not None else None
                    adv = self._advantages(items, idx, width)
                    with self._autocast():
                        lp = completion_logprobs(self.engine.module, batch, cfg.logprob_chunk_tokens, with_entropy=True,
                                                 temperature=self._temperatures(items, idx))
                        lm = self._lm_loss() if self.lm_stream is not None else None
                    out = grpo_loss(
                        lp.logprobs, old_lp, adv, lp.mask, ref_lp,
                        clip_eps=algo.clip_eps, kl_beta=algo.kl_beta, kl_estimator=algo.kl_estimator,
                        kl_clamp=algo.kl_clamp, loss_agg=algo.loss_agg, total_tokens=total_tokens,
                        total_sequences=total_seqs, max_tokens=self.max_new_tokens,
                    )
                    self.engine.backward(mix_lm_loss(out.loss * undo, lm, coef))
                    self.engine.step()
                    mask = lp.mask.float()
                    mini_loss += float(out.loss.detach())
                    if lm is not None:
                        add("lpt_loss", float(lm.detach()))
                    n = float(out.n_tokens)
                    tokens += n
                    for key, value in (("clip_fraction", out.clip_fraction), ("kl", out.kl), ("ratio", out.ratio_mean),
                                       ("entropy", (lp.entropy * mask).sum() / mask.sum().clamp(min=1))):
                        weighted[key] = weighted.get(key, 0.0) + float(value) * n
                add("policy_loss", mini_loss)
                grad_norm = self.engine.get_global_grad_norm()
                if grad_norm is not None:
                    add("grad_norm", float(grad_norm))
                self.steps += 1
        stats = {f"train/{k}": v / counts[k] for k, v in sums.items()}
        stats.update({f"train/{k}": v / max(tokens, 1.0) for k, v in weighted.items()})
        stats["train/tokens"] = tokens
        stats["train/lr"] = float(self.engine.get_lr()[0])
        stats["train/optimizer_steps"] = float(self.steps)
        return stats

    def _advantages(self, items: list[TrainItem], idx: list[int], width: int) -> torch.Tensor:
        """[B, 1] sequence advantages, or [B, width] when any item has per-token ones."""
        if all(items[i].token_advantages is None for i in idx):
            return torch.tensor([[items[i].advantage] for i in idx], device=self.device)
        out = torch.zeros(len(idx), width)
        for row, i in enumerate(idx):
            tok = items[i].token_advantages
            values = torch.tensor(tok) if tok is not None else torch.full((len(items[i].completion_ids),), items[i].advantage)
            out[row, : values.numel()] = values
        return out.to(self.device)

    def _lm_loss(self) -> torch.Tensor:
        """L_PT on the next blocks of this rank's text stream."""
        blocks = self.lm_stream.take(self.lpt.sequences_per_micro_batch)
        batch = pack_sequences([b[:1] for b in blocks], [b[1:] for b in blocks], self.pad_id)
        lp = completion_logprobs(self.engine.module, batch, self.cfg.logprob_chunk_tokens)
        return lm_loss(lp.logprobs, lp.mask)

    # ----- weights ------------------------------------------------------------------
    def _named_params(self) -> list[tuple[str, torch.nn.Parameter]]:
        return list(self.engine.module.named_parameters())

    def weight_plan(self, bucket_mb: float, dtype: str, version: int) -> dict:
        named = [(n, tuple(getattr(p, "ds_shape", p.shape)), DTYPES[dtype]) for n, p in self._named_params()]
        return plan_buckets(named, int(bucket_mb * 2**20), version).to_wire()

    def sync_endpoint(self) -> tuple[str, int]:
        """An address and a free port on this node for the weight-sync rendezvous."""
        import socket

        import ray

        host = ray.util.get_node_ip_address() if ray.is_initialized() else "127.0.0.1"
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
            return host, s.getsockname()[1]

    def init_sync_group(self, backend: str, host: str, port: int, world_size: int, timeout_s: float) -> None:
        if self.rank == 0:
            self.sync_group = create_group(backend, host, port, 0, world_size, timeout_s)

    def _gathered(self, params: list[torch.nn.Parameter]):
        """Full parameters under ZeRO-3 (a collective: every rank must enter), else as they are."""
        import deepspeed

        if self.cfg.zero_stage == 3:
            return deepspeed.zero.GatheredParameters(params, modifier_rank=None)
        return nullcontext()

    def broadcast_weights(self, wire_plan: dict) -> dict[str, float]:
        """Send every bucket of `wire_plan` to the engines. Every rank must call this
        (under ZeRO-3 the parameters are gathered collectively); rank 0 sends. Rank 0 also
        returns checksums of the plan's `probes` as sent, for the engines' content check."""
        plan = SyncPlan.from_wire(wire_plan)
        probes = set(wire_plan.get("probes", ()))
        sent: dict[str, tuple[float, float]] = {}
        params = dict(self._named_params())
        started = time.perf_counter()
        for bucket in plan.buckets:
            tensors = [params[m.name] for m in bucket]
            with self._gathered(tensors):
                if self.rank == 0:
                    flat = pack_bucket(tensors, bucket, self.device)
                    broadcast(self.sync_group, flat)
                    sent.update({n: tensor_checksum(t) for n, t in unpack_bucket(flat, bucket) if n in probes})
        seconds = time.perf_counter() - started
        return {"sync/seconds": seconds, "sync/bytes": float(plan.total_bytes),
                "sync/bytes_per_s": plan.total_bytes / max(seconds, 1e-9), "probes": sent}

    def raw_broadcast(self, nbytes: int) -> float:
        """One bare broadcast of `nbytes` from rank 0 (the benchmark's baseline)."""
        flat = torch.zeros(nbytes, dtype=torch.uint8, device=self.device)
        started = time.perf_counter()
        broadcast(self.sync_group, flat)
        return time.perf_counter() - started

    def checksums(self, dtype: str) -> dict[str, tuple[float, float]]:
        """Checksums of the learner's weights cast to the engine dtype, by HF name. Every rank
        must call this under ZeRO-3 (the parameters are gathered)."""
        out = {}
        for name, param in self._named_params():
            with self._gathered([param]):
                out[name] = tensor_checksum(param.detach().to(DTYPES[dtype]))
        return out

    def save(self, path: str, dtype: str) -> str:
        params = [p for _, p in self._named_params()]
        with self._gathered(params):
            if self.rank == 0:
                model = self.engine.module
                state = {k: v.detach().to(DTYPES[dtype]).cpu().clone() for k, v in model.state_dict().items()}
                model.config.torch_dtype = dtype
                model.save_pretrained(path, state_dict=state)
                self.tokenizer.save_pretrained(path)
        return path


def _pad(rows: list[torch.Tensor], width: int) -> torch.Tensor:
    out = torch.zeros(len(rows), width, dtype=torch.float32)
    for i, r in enumerate(rows):
        out[i, : r.numel()] = r
    return out


def _mismatch(items: list[TrainItem], learner: list[torch.Tensor]) -> dict[str, float]:
    """Mean and max |log p_vLLM - log p_learner| per token over items that carry vLLM's
    log-probs: how far the sampler's distribution is from the one the learner trains."""
    diffs = [(torch.tensor(it.sampling_logprobs) - lp).abs() for it, lp in zip(items, learner)
             if it.sampling_logprobs is not None and len(it.sampling_logprobs) == lp.numel() and lp.numel()]
    if not diffs:
        return {}
    flat = torch.cat(diffs)
    return {"train/logprob_mismatch": float(flat.mean()), "train/logprob_mismatch_max": float(flat.max()),
            "train/mismatch_tokens": float(flat.numel())}
