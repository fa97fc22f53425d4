"""One training rank's whole state on disk: the DeepSpeed engine (weights, optimiser,
learning-rate schedule) through DeepSpeed's own checkpoint format, plus what the rank's
step objects need to continue exactly (their step counters, the L_PT stream position and
the torch RNG), and a digest of the optimiser state that proves a load bit for bit.

Every rank of an engine calls `save_rank_state` / `load_rank_state` (DeepSpeed saves its
ZeRO shards collectively); the directory must be one every rank can reach.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

TAG = "state"


def tensor_digest(obj, h=None) -> str:
    """sha256 over every tensor (bytes, dtype, shape) and scalar of a nested state, in a fixed
    order: two states digest equal only when every value is equal bit for bit."""
    top = h is None
    h = h or hashlib.sha256()
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    elif isinstance(obj, dict):
        for key in sorted(obj, key=str):
            h.update(f"K{key}".encode())
            tensor_digest(obj[key], h)
    elif isinstance(obj, (list, tuple)):
        h.update(f"L{len(obj)}".encode())
        for item in obj:
            tensor_digest(item, h)
    else:
        h.update(f"S{obj!r}".encode())
    return h.hexdigest() if top else ""


def optimizer_digest(engine) -> str:
    """Digest of this rank's optimiser state (ZeRO shard, moments, fp32 master copy, step)."""
    return tensor_digest(engine.optimizer.state_dict())


def save_rank_state(engine, directory: str, rank: int, extra: dict, frozen_base: bool) -> dict:
    """Write this rank's DeepSpeed state and `extra` under `directory`; returns the optimiser
    digest as saved. `frozen_base` (LoRA) leaves the frozen base weights out."""
    engine.save_checkpoint(directory, tag=TAG, save_latest=False, exclude_frozen_parameters=frozen_base)
    torch.save({**extra, "torch_rng": torch.get_rng_state()}, Path(directory) / f"rank{rank}_extra.pt")
    return {"optimizer_digest": optimizer_digest(engine)}


def load_rank_state(engine, directory: str, rank: int, frozen_base: bool) -> tuple[dict, dict]:
    """Load what `save_rank_state` wrote; returns `extra` and the optimiser digest as loaded."""
    path = Path(directory)
    if not (path / TAG).is_dir():
        raise FileNotFoundError(f"{path} holds no DeepSpeed state (no {TAG}/ folder): not a whole checkpoint")
    loaded, _ = engine.load_checkpoint(directory, tag=TAG, load_module_strict=not frozen_base,
                                       load_optimizer_states=True, load_lr_scheduler_states=True)
    if loaded is None:
        raise RuntimeError(f"DeepSpeed could not load the state in {path / TAG}")
    extra = torch.load(path / f"rank{rank}_extra.pt", weights_only=False)
    torch.set_rng_state(extra.pop("torch_rng"))
    return extra, {"optimizer_digest": optimizer_digest(engine)}
