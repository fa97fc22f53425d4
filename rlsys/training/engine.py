"""The training engine of one data-parallel rank: process group, DeepSpeed engine with its
optimiser and learning-rate schedule, mixed precision, ZeRO-3 gathering, saving, and the
frozen reference. The policy learner and the critic each own one.

On the CPU, DeepSpeed runs over gloo with fp32 master weights and bf16 autocast for the
passes; on GPUs over NCCL with DeepSpeed's bf16 mode.
"""

from __future__ import annotations

import math
import os
from contextlib import nullcontext

import torch

from rlsys.config import LearnerConfig
from rlsys.models.dtypes import torch_dtype
from rlsys.models.lora import is_lora
from rlsys.models.no_dropout import load_without_dropout
from rlsys.transport.ports import listening_store


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


def init_process(rank: int, world_size: int, master_addr: str, master_port: int, cuda: bool,
                 torch_threads: int | None, seed: int) -> torch.device:
    """Join this role's process group (gloo on the CPU, NCCL on GPUs); returns the device."""
    if not cuda:
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    os.environ.update(MASTER_ADDR=master_addr, MASTER_PORT=str(master_port), RANK=str(rank),
                      WORLD_SIZE=str(world_size), LOCAL_RANK="0")
    torch.set_num_threads(torch_threads or os.cpu_count() or 1)
    torch.manual_seed(seed)
    import datetime

    import deepspeed  # after the accelerator choice above, which it reads on import

    backend = "nccl" if cuda else "gloo"
    if master_addr.startswith("127."):  # one machine: gloo's own sockets on loopback too
        os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    # The group's store is opened here, listening on `master_addr` only (torch's own would
    # listen on every interface); DeepSpeed then takes the initialised group as it is.
    timeout = 1800.0
    store = (listening_store(master_addr, master_port, timeout, world_size) if rank == 0 else
             torch.distributed.TCPStore(master_addr, master_port, world_size, False,
                                        datetime.timedelta(seconds=timeout)))
    torch.distributed.init_process_group(backend, store=store, rank=rank, world_size=world_size,
                                         timeout=datetime.timedelta(seconds=timeout))
    deepspeed.init_distributed(dist_backend=backend)
    return torch.device("cuda", torch.cuda.current_device()) if cuda else torch.device("cpu")


def parameter_groups(model: torch.nn.Module, lr_of: dict[torch.nn.Module, float]) -> list:
    """The trainable parameters: one group at the configured rate, and one per module of `lr_of`
    at its own (plain parameters when `lr_of` is empty)."""
    own = {id(p) for m in lr_of for p in m.parameters()}
    rest = [p for p in model.parameters() if p.requires_grad and id(p) not in own]
    if not lr_of:
        return rest
    return [{"params": rest}] + [{"params": [p for p in m.parameters() if p.requires_grad], "lr": lr}
                                 for m, lr in lr_of.items()]


class TrainingEngine:
    """A model wrapped by DeepSpeed: AdamW, cosine schedule with warmup, gradient clipping,
    ZeRO stage and accumulation from `cfg`, `world_size` ranks sharing each mini-batch."""

    def __init__(self, model: torch.nn.Module, cfg: LearnerConfig, world_size: int, dtype: str,
                 total_optimizer_steps: int, device: torch.device, lr_of: dict[torch.nn.Module, float] | None = None
                 ) -> None:
        """`lr_of`: submodules that learn at their own rate (their own optimiser parameter group)."""
        import deepspeed

        self.cfg, self.world_size, self.device = cfg, world_size, device
        self.dtype = torch_dtype(dtype)
        cuda = device.type == "cuda"
        if cfg.gradient_checkpointing:
            model.gradient_checkpointing_enable()
            model.config.use_cache = False
        per_rank = cfg.mini_batch_size // world_size
        ds_config = {
            "train_micro_batch_size_per_gpu": cfg.micro_batch_size,
            "gradient_accumulation_steps": per_rank // cfg.micro_batch_size,
            "gradient_clipping": cfg.grad_clip,
            "zero_optimization": {"stage": cfg.zero_stage},
            "optimizer": {"type": "AdamW",
                          "params": {"lr": cfg.lr, "weight_decay": cfg.weight_decay, "torch_adam": True}},
            "zero_allow_untested_optimizer": True,
            "steps_per_print": 10**9,
            "wall_clock_breakdown": False,
        }
        # On GPUs DeepSpeed's bf16 mode keeps bf16 weights; on the CPU fp32 master
        # weights with bf16 autocast are what ran fastest and stably.
        self.autocast_dtype = None
        if self.dtype != torch.float32:
            if cuda:
                ds_config["bf16" if self.dtype == torch.bfloat16 else "fp16"] = {"enabled": True}
            else:
                self.autocast_dtype = self.dtype
        total = max(1, total_optimizer_steps)

        def scheduler(optimizer):
            return torch.optim.lr_scheduler.LambdaLR(
                optimizer, lambda s: cosine_with_warmup(s, total, cfg.warmup_steps, cfg.min_lr_ratio))

        model.train()
        self.engine, _, _, _ = deepspeed.initialize(
            model=model, model_parameters=parameter_groups(model, lr_of or {}),
            config=ds_config, lr_scheduler=scheduler)
        # One rank without ZeRO has nothing to reduce, yet DeepSpeed would copy every gradient
        # through a collective after each backward; it also reports no norm then (kept here).
        self.plain_single_rank = world_size == 1 and cfg.zero_stage == 0
        if self.plain_single_rank:
            self.engine.enable_backward_allreduce = False
        self._norm: float | None = None

    @property
    def module(self) -> torch.nn.Module:
        return self.engine.module

    def autocast(self):
        if self.autocast_dtype is None:
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)

    def backward_and_step(self, loss: torch.Tensor) -> None:
        """One micro-batch; DeepSpeed steps the optimiser at the end of each accumulation."""
        self.engine.backward(loss)
        if self.plain_single_rank and self.engine.is_gradient_accumulation_boundary():
            grads = [p.grad for p in self.engine.module.parameters() if p.grad is not None]
            self._norm = float(torch.nn.utils.get_total_norm(grads)) if grads else None
        self.engine.step()

    def grad_norm(self) -> float | None:
        norm = self._norm if self.plain_single_rank else self.engine.get_global_grad_norm()
        return None if norm is None else float(norm)

    def lr(self) -> float:
        return float(self.engine.get_lr()[0])

    def global_sum(self, values: list[float]) -> list[float]:
        """`values` summed over every rank of this engine (float64)."""
        t = torch.tensor(values, dtype=torch.float64)
        if self.world_size > 1:
            torch.distributed.all_reduce(t)
        return t.tolist()

    def mini_batches(self, items: list, lengths: list[int], rng, epochs: int, role: str,
                     tokens_of=lambda item: len(item.completion_ids), split=None, group_of=None):
        """`epochs` shuffled passes over this rank's items in optimiser mini-batches; yields each
        mini-batch's micro-batches with its global token and sequence counts (all ranks) and the
        factor that undoes DeepSpeed's division of each backward by accumulation steps and ranks.
        `split(mini)` cuts a mini-batch into micro-batches (default: by length). With
        `group_of(item)`, the shuffle moves whole groups (a prompt's completions stay together,
        so a mini-batch computes few distinct prompts)."""
        per_rank_mini = self.cfg.mini_batch_size // self.world_size
        if len(items) % per_rank_mini:
            raise ValueError(f"{role}: a rank got {len(items)} items, not a multiple of {per_rank_mini}")
        for _ in range(epochs):
            order = list(range(len(items)))
            rng.shuffle(order)
            if group_of is not None:
                groups: dict = {}
                for i in order:
                    groups.setdefault(group_of(items[i]), []).append(i)
                units = list(groups.values())
                rng.shuffle(units)
                order = [i for unit in units for i in unit]
            for start in range(0, len(order), per_rank_mini):
                mini = order[start : start + per_rank_mini]
                tokens, seqs = (max(1.0, v) for v in self.global_sum(
                    [float(sum(tokens_of(items[i]) for i in mini)), float(len(mini))]))
                micros = split(mini) if split else micro_batches(mini, lengths, self.cfg.micro_batch_size)
                yield micros, tokens, seqs, float(len(micros) * self.world_size)

    def gathered(self, params: list[torch.nn.Parameter]):
        """Full parameters under ZeRO-3 (a collective: every rank must enter), else as they are."""
        import deepspeed

        if self.cfg.zero_stage == 3:
            return deepspeed.zero.GatheredParameters(params, modifier_rank=None)
        return nullcontext()

    def save_state(self, directory: str, rank: int, extra: dict) -> dict:
        """Weights, optimiser, schedule and `extra` of this rank (every rank must call)."""
        from rlsys.training.state import save_rank_state

        return save_rank_state(self.engine, directory, rank, extra, frozen_base=is_lora(self.module))

    def load_state(self, directory: str, rank: int) -> tuple[dict, dict]:
        from rlsys.training.state import load_rank_state

        return load_rank_state(self.engine, directory, rank, frozen_base=is_lora(self.module))

    def save_pretrained(self, path: str, dtype: str, rank: int, tokenizer=None) -> str:
        """The model as a HF folder in `dtype`, written by rank 0 (every rank must call)."""
        params = list(self.module.parameters())
        with self.gathered(params):
            if rank == 0:
                model = self.module
                # With LoRA, PeftModel.save_pretrained writes the adapter only (the base is unchanged).
                lora = is_lora(model)
                state = {k: v.detach().to(torch_dtype(dtype)).cpu().clone() for k, v in model.state_dict().items()
                         if not lora or "lora_" in k}
                if not lora:
                    model.config.dtype = dtype
                model.save_pretrained(path, state_dict=state)
                if tokenizer is not None:
                    tokenizer.save_pretrained(path)
        return path


def frozen_reference(model_path: str, dtype: str, device: torch.device) -> torch.nn.Module:
    """The reference policy: a frozen copy of the initial weights in the compute dtype."""
    from transformers import AutoModelForCausalLM

    reference = load_without_dropout(AutoModelForCausalLM, model_path, dtype=torch_dtype(dtype)).to(device)
    return reference.eval().requires_grad_(False)
