"""Learner: one DeepSpeed data-parallel rank of the policy, and the sender of its weights.

K ranks run as K Ray actors (see rlsys.distributed.actors); each gets a shard of every
batch. The training engine (DeepSpeed, optimiser, reference) lives in rlsys.training.engine,
the loss step in rlsys.training.policy, the broadcast maths in rlsys.transport; this class
puts them together behind the calls the Ray groups make. Rank 0 owns the weight broadcast.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext

import torch

from rlsys.algorithms.losses import LOSSES
from rlsys.algorithms.tis import OldPolicy
from rlsys.config import LearnerConfig, LoraSettings, LPTConfig
from rlsys.models.dtypes import torch_dtype
from rlsys.models.logprobs import check_logit_path
from rlsys.models.lora import adapter_config, adapter_parameters, apply_lora, merged_weights
from rlsys.models.no_dropout import load_without_dropout
from rlsys.models.sampling_filter import SamplingFilter
from rlsys.training.engine import TrainingEngine, frozen_reference, init_process
from rlsys.training.policy import PolicyStep, logprob_mismatch, score_logprobs
from rlsys.training.preference import PreferenceStep
from rlsys.transport.weight_sync import (
    SyncPlan, broadcast, close_group, create_group, host_rendezvous, pack_bucket, plan_buckets, tensor_checksum,
    unpack_bucket,
)
from rlsys.records import PairItem, TrainItem


class Learner:
    def __init__(
        self,
        model_path: str,
        learner: LearnerConfig,
        loss: str,
        loss_kwargs: dict,
        needs_reference: bool,
        dtype: str,
        rank: int,
        world_size: int,
        master_addr: str,
        master_port: int,
        total_optimizer_steps: int,
        seed: int = 0,
        lpt: LPTConfig | None = None,
        max_new_tokens: int | None = None,
        lora: LoraSettings | None = None,
        old_policy: OldPolicy | None = None,
        keep: SamplingFilter | None = None,
        keep_last_push: bool = False,
    ) -> None:
        """`keep`: the top-k / top-p filter the engines sample through (the learner's passes
        measure the same distribution). `keep_last_push` (asynchronous rollouts): rank 0 keeps
        the buckets of its last weight push, to send exactly those weights to an engine that
        replaces a dead one while training has already moved the weights on."""
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.cfg, self.rank, self.world_size = learner, rank, world_size
        cuda = torch.cuda.is_available() and learner.num_gpus > 0
        self.device = init_process(rank, world_size, master_addr, master_port, cuda, learner.torch_threads, seed)
        self.node_host = master_addr  # rank 0's node (the rendezvous host): where its sync rendezvous listens
        self.tokenizer = AutoTokenizer.from_pretrained(model_path)
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        model = load_without_dropout(AutoModelForCausalLM, model_path, dtype=torch.float32)
        check_logit_path(model.eval(), model_path)
        self.lora = lora
        if lora is not None:
            model = apply_lora(model, lora, model_path)
            if learner.gradient_checkpointing:  # frozen embeddings: checkpointed blocks need a grad input
                model.enable_input_require_grads()
        # Under LoRA the reference is the policy with its adapter off: no second model in memory.
        self.needs_reference = needs_reference
        self.engine = TrainingEngine(model, learner, world_size, dtype, total_optimizer_steps, self.device)
        # With autocast (the CPU path) the policy keeps fp32 weights: the reference must too,
        # under the same autocast, or the KL to it is not 0 before the first update.
        ref_dtype = "float32" if self.engine.autocast_dtype is not None else dtype
        self.reference = frozen_reference(model_path, ref_dtype, self.device) if needs_reference and lora is None \
            else None
        lpt = lpt if lpt is not None and lpt.coef > 0 else None
        lm_stream = None
        if lpt is not None:
            from rlsys.data.text import BlockStream, load_texts, token_blocks

            blocks = token_blocks(load_texts(lpt.source, lpt.text_field), self.tokenizer, lpt.block_tokens)
            lm_stream = BlockStream(blocks, rank, world_size)
        self.policy, self.preference = None, None
        if loss == "dpo":
            self.preference = PreferenceStep(self.engine, loss_kwargs["loss"], loss_kwargs["beta"],
                                             loss_kwargs["label_smoothing"], self.pad_id, rank, seed,
                                             loss_kwargs.get("nll_coef", 0.0))
        elif loss in LOSSES:
            self.policy = PolicyStep(self.engine, LOSSES[loss], loss_kwargs, self.pad_id, rank, seed,
                                     max_new_tokens, lm_stream, lpt, old_policy or OldPolicy(), keep)
        else:
            raise ValueError(f"unknown loss {loss!r}; known: {', '.join(LOSSES)}, dpo")
        self.sync_group = None
        self.rendezvous = None  # the store `sync_endpoint` opened for the next group
        self.keep_last_push = keep_last_push
        self.last_push: tuple[dict, list[torch.Tensor], dict] | None = None  # (plan, buckets, probe checksums)

    def _reference(self) -> tuple[torch.nn.Module, AbstractContextManager]:
        """The reference policy and the context it runs in."""
        if not self.needs_reference:
            raise ValueError("no reference model: the algorithm does not use one")
        if self.lora is not None:
            return self.engine.module, self.engine.module.disable_adapter()
        return self.reference, nullcontext()

    # ----- passes -------------------------------------------------------------------
    def logprobs(self, items: list, reference: bool = False) -> list[list[float]]:
        """Per-token log-probs of each item's completion at its sampling temperature."""
        model, context = self._reference() if reference else (self.engine.module, nullcontext())
        cfg = self.cfg
        with context:
            return score_logprobs(model, items, cfg.micro_batch_size, cfg.logprob_chunk_tokens, self.pad_id,
                                  self.engine.autocast, shared=self.policy.shared if self.policy else False,
                                  keep=self.policy.keep if self.policy else None)

    def score(self, items: list, reference: bool, old: bool = True) -> dict:
        """Reference and (when `old`) old-policy log-probs of this rank's share of the samples,
        timed, with the gap to vLLM's sampling log-probs."""
        t0 = time.perf_counter()
        ref = self.logprobs(items, reference=True) if reference else None
        t1 = time.perf_counter()
        old_lp = self.logprobs(items) if old else None
        stats = {"time/reference": t1 - t0, "time/old_logprobs": time.perf_counter() - t1,
                 **(logprob_mismatch(items, old_lp) if old else {})}
        return {"old": old_lp, "ref": ref, "stats": stats}

    def train_on_batch(self, items: list[TrainItem]) -> dict[str, float]:
        """`epochs` passes of mini-batch updates; this rank's statistics (merged over ranks
        by `merge_rank_stats`). Items that come without old log-probs are scored first (and
        by the reference, when there is one)."""
        scored: dict = {}
        needs_old = self.policy.old.source == "learner"
        missing = [it for it in items if (needs_old and it.old_logprobs is None)
                   or (self.needs_reference and it.ref_logprobs is None)]
        if missing:
            out = self.score(missing, reference=self.needs_reference, old=needs_old)
            for i, it in enumerate(missing):
                it.old_logprobs = out["old"][i] if out["old"] is not None else it.old_logprobs
                it.ref_logprobs = out["ref"][i] if out["ref"] is not None else None
            scored = out["stats"]
        t0 = time.perf_counter()
        stats = self.policy.train(items)
        return {**scored, **stats, "time/train": time.perf_counter() - t0}

    # ----- preference pairs (DPO) ------------------------------------------------------
    def reference_pairs(self, items: list[PairItem]) -> list[tuple[float, float]]:
        """The reference's (chosen, rejected) summed log-probs of this rank's pairs."""
        model, context = self._reference()
        return self.preference.reference(items, context, model)

    def train_pairs(self, items: list[PairItem]) -> dict:
        t0 = time.perf_counter()
        out = self.preference.train(items)
        return {**out, "seconds": time.perf_counter() - t0}

    def evaluate_pairs(self, items: list[PairItem]) -> list[list[float]]:
        return self.preference.evaluate(items)

    def parameter_counts(self) -> dict[str, int]:
        params = list(self.engine.module.parameters())
        count = lambda p: int(getattr(p, "ds_numel", p.numel()))  # noqa: E731 (ZeRO-3 keeps the full size there)
        return {"trainable": sum(count(p) for p in params if p.requires_grad), "total": sum(count(p) for p in params)}

    # ----- weights ------------------------------------------------------------------
    def _sync_weights(self) -> list[tuple[str, list[torch.nn.Parameter], Callable[[], torch.Tensor]]]:
        """What a sync sends, by name, each with the parameters it is computed from (gathered
        under ZeRO-3) and the function computing it: every weight; under LoRA only the adapter
        (named as PEFT saves it), or with `engine_weights: merged` every weight merged."""
        if self.lora is not None and not self.lora.adapter_on_engine:
            return merged_weights(self.engine.module)
        named = adapter_parameters(self.engine.module) if self.lora is not None \
            else self.engine.module.named_parameters()
        return [(name, [p], p.detach) for name, p in named]

    def weight_plan(self, bucket_mb: float, dtype: str, version: int) -> dict:
        named = [(n, tuple(getattr(parts[0], "ds_shape", parts[0].shape)), torch_dtype(dtype))
                 for n, parts, _ in self._sync_weights()]
        plan = plan_buckets(named, int(bucket_mb * 2**20), version).to_wire()
        if self.lora is not None and self.lora.adapter_on_engine:
            plan["adapter"] = adapter_config(self.engine.module)
        return plan

    def sync_endpoint(self) -> tuple[str, int]:
        """The address of a weight-sync rendezvous this rank opens now on its node (rank 0)."""
        self.rendezvous = host_rendezvous(self.node_host)
        return self.node_host, self.rendezvous.port

    def init_sync_group(self, backend: str, host: str, port: int, world_size: int, timeout_s: float) -> None:
        """Join a new weight-sync group (rank 0), releasing the one it replaces."""
        if self.rank == 0:
            close_group(self.sync_group)
            self.sync_group = None
            store = self.rendezvous if self.rendezvous is not None and self.rendezvous.port == port else None
            self.sync_group = create_group(backend, host, port, 0, world_size, timeout_s, store)
            self.rendezvous = None

    def broadcast_weights(self, wire_plan: dict) -> dict[str, float]:
        """Send every bucket of `wire_plan` to the engines. Every rank must call this
        (under ZeRO-3 the parameters are gathered collectively); rank 0 sends. Rank 0 also
        returns checksums of the plan's `probes` as sent, for the engines' content check."""
        plan = SyncPlan.from_wire(wire_plan)
        probes = set(wire_plan.get("probes", ()))
        sent: dict[str, tuple[float, float]] = {}
        weights = {name: (parts, compute) for name, parts, compute in self._sync_weights()}
        started = time.perf_counter()
        kept = []
        for bucket in plan.buckets:
            with self.engine.gathered([p for m in bucket for p in weights[m.name][0]]):
                if self.rank == 0:
                    flat = pack_bucket([weights[m.name][1]() for m in bucket], bucket, self.device)
                    broadcast(self.sync_group, flat)
                    sent.update({n: tensor_checksum(t) for n, t in unpack_bucket(flat, bucket) if n in probes})
                    if self.keep_last_push:
                        kept.append(flat.cpu())
        if self.rank == 0 and self.keep_last_push:
            self.last_push = (wire_plan, kept, dict(sent))
        seconds = time.perf_counter() - started
        return {"sync/seconds": seconds, "sync/bytes": float(plan.total_bytes),
                "sync/bytes_per_s": plan.total_bytes / max(seconds, 1e-9), "probes": sent}

    def last_push_plan(self) -> dict | None:
        """The plan of the last weight push rank 0 kept (None: none kept)."""
        return self.last_push[0] if self.last_push else None

    def rebroadcast_last(self) -> dict:
        """The last push's buckets again, bit for bit, to a group an engine joined since (rank 0;
        runs beside a training step, in the sync-group thread)."""
        plan, buckets, sent = self.last_push
        started = time.perf_counter()
        for flat in buckets:
            broadcast(self.sync_group, flat.to(self.device))
        nbytes = float(sum(b.numel() for b in buckets))
        seconds = time.perf_counter() - started
        return {"sync/seconds": seconds, "sync/bytes": nbytes, "sync/bytes_per_s": nbytes / max(seconds, 1e-9),
                "probes": sent}

    def raw_broadcast(self, nbytes: int) -> float:
        """One bare broadcast of `nbytes` from rank 0 (the benchmark's baseline)."""
        flat = torch.zeros(nbytes, dtype=torch.uint8, device=self.device)
        started = time.perf_counter()
        broadcast(self.sync_group, flat)
        return time.perf_counter() - started

    def checksums(self, dtype: str, every_weight: bool = False) -> dict[str, tuple[float, float]]:
        """Checksums of the weights a sync sends (`every_weight`: of all, base included) cast to
        `dtype`, by name. Every rank must call this under ZeRO-3 (the parameters are gathered)."""
        out = {}
        named = [(n, [p], p.detach) for n, p in self.engine.module.named_parameters()] if every_weight \
            else self._sync_weights()
        for name, parts, compute in named:
            with self.engine.gathered(parts):
                out[name] = tensor_checksum(compute().to(torch_dtype(dtype)))
        return out

    def save_checkpoint(self, directory: str) -> dict:
        """This rank's whole training state under `directory` (every rank must call); returns
        the optimiser digest as saved."""
        return self.engine.save_state(directory, self.rank, (self.policy or self.preference).state_dict())

    def load_checkpoint(self, directory: str) -> dict:
        """Continue from `save_checkpoint`'s state; returns the optimiser digest as loaded."""
        extra, loaded = self.engine.load_state(directory, self.rank)
        (self.policy or self.preference).load_state_dict(extra)
        return loaded

    def optimizer_state(self) -> dict:
        """This rank's optimiser state as tensors (what a test compares bit for bit)."""
        return self.engine.engine.optimizer.state_dict()

    def save(self, path: str, dtype: str) -> str:
        return self.engine.save_pretrained(path, dtype, self.rank, self.tokenizer)
