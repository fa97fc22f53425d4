"""How a tensor-parallel engine's shards split the CPUs this process may use (vLLM-CPU's
thread binding), and the config rule that a shard holds a GPU of its own."""

import pytest

from rlsys.config import Config
from rlsys.workers.engine_parallel import cpu_thread_groups


@pytest.mark.parametrize("cpus, shards, want", [
    ([0, 1], 2, "0|1"),
    ([0, 1, 2, 3], 2, "0,1|2,3"),
    ([4, 5, 6], 2, "4|5,6"),
    ([3], 2, "3|3"),  # fewer CPUs than shards: they share
    ([0, 1], 1, "0,1"),
])
def test_cpu_thread_groups(cpus, shards, want):
    assert cpu_thread_groups(cpus, shards) == want


def test_a_shard_needs_a_gpu_of_its_own(tiny_model_path):
    base = {"model": {"path": tiny_model_path}}
    with pytest.raises(ValueError, match=r"rollout.tensor_parallel_size=4 needs rollout.num_gpus >= 4"):
        Config.model_validate({**base, "rollout": {"tensor_parallel_size": 4, "num_gpus": 2}})
    with pytest.raises(ValueError, match=r"teacher.tensor_parallel_size is for teacher.backend=vllm"):
        Config.model_validate({**base, "teacher": {"path": tiny_model_path, "backend": "hf", "tensor_parallel_size": 2}})
    ok = Config.model_validate({**base, "rollout": {"tensor_parallel_size": 2, "num_gpus": 2},
                                "teacher": {"path": tiny_model_path, "tensor_parallel_size": 2}})
    assert ok.rollout.tensor_parallel_size == ok.teacher.tensor_parallel_size == 2
