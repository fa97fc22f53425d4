"""A learner rank's checkpoint: a fresh rank that loads it holds the saved optimiser state
bit for bit and then takes exactly the step the saving rank takes (real DeepSpeed, gloo)."""

import pytest
import torch

from rlsys.config import Config
from rlsys.records import TrainItem

pytestmark = pytest.mark.ray

FIRST = [TrainItem([1, 2, 3], [10, 11, 12, 13], 1.0), TrainItem([1, 2, 3], [20, 21], -1.0),
         TrainItem([4, 5], [10, 11], 0.5), TrainItem([4, 5], [30, 31, 32], -0.5)]
SECOND = [TrainItem([7, 8], [40, 41, 42], -1.0), TrainItem([7, 8], [50], 1.0),
          TrainItem([9], [60, 61, 62, 63, 64], 0.25), TrainItem([9], [70, 71], -0.25)]


def _cfg(path: str, zero: int, lora: bool) -> Config:
    return Config.model_validate({
        "model": {"path": path, "dtype": "float32", "max_model_len": 256, **({"lora": {"r": 4}} if lora else {})},
        "rollout": {"prompts_per_iteration": 1, "group_size": 4},
        "learner": {"zero_stage": zero, "mini_batch_size": 2, "micro_batch_size": 1, "lr": 1e-3,
                    "warmup_steps": 2, "num_cpus": 0.25},
        "algorithm": {"kl_beta": 0.0},
    })


def _equal(a, b, where="state") -> None:
    """Every tensor and scalar of two nested states equal, bit for bit."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape, where
        assert torch.equal(a.reshape(-1).view(torch.uint8), b.reshape(-1).view(torch.uint8)), where
    elif isinstance(a, dict):
        assert set(a) == set(b), where
        for k in a:
            _equal(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _equal(x, y, f"{where}[{i}]")
    elif hasattr(a, "__dict__"):  # DeepSpeed's loss scaler: an object without __eq__
        _equal(vars(a), vars(b), where)
    else:
        assert a == b, where


@pytest.mark.parametrize("zero,lora", [(2, False), (0, True)])
def test_loaded_rank_has_the_saved_optimizer_and_takes_the_same_step(local_ray, tiny_model_path, tmp_path, zero, lora):
    from rlsys.distributed.actors import start_learners

    cfg = _cfg(tiny_model_path, zero, lora)
    saver = start_learners(cfg, tiny_model_path, 10)[0]
    local_ray.get(saver.train_on_batch.remote(FIRST))
    saved = local_ray.get(saver.save_checkpoint.remote(str(tmp_path)))
    saved_state = local_ray.get(saver.optimizer_state.remote())
    loader = start_learners(cfg, tiny_model_path, 10)[0]
    loaded = local_ray.get(loader.load_checkpoint.remote(str(tmp_path)))
    _equal(saved_state, local_ray.get(loader.optimizer_state.remote()))
    assert loaded["optimizer_digest"] == saved["optimizer_digest"]
    # The next batch: same shuffle, same learning rate (warm-up position), same update.
    a, b = local_ray.get([saver.train_on_batch.remote(SECOND), loader.train_on_batch.remote(SECOND)])
    assert {k: v for k, v in a.items() if not k.startswith("time/")} == {
        k: v for k, v in b.items() if not k.startswith("time/")}
    assert {"train/policy_loss", "train/lr"} <= set(a) and ("train/grad_norm" in a or zero == 0)
    assert a["train/optimizer_steps"] == 4 and a["train/lr"] != pytest.approx(1e-3 * 0.5)
    assert local_ray.get(saver.checksums.remote("float32")) == local_ray.get(loader.checksums.remote("float32"))
    for handle in (saver, loader):
        local_ray.kill(handle)
