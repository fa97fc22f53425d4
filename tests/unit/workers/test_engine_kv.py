"""The KV-cache block an engine is built with: 32 tokens on a CPU unless set, as given when set."""

import torch

from rlsys.config import load_config
from rlsys.workers.engine_kv import kv_block_args


def test_cpu_engines_take_32_token_blocks_unless_told_otherwise():
    assert not torch.cuda.is_available()  # this suite runs on CPUs
    assert kv_block_args() == {"block_size": 32}
    assert kv_block_args(64) == {"block_size": 64}
    assert load_config(None, []).rollout.kv_block_size is None
    assert load_config(None, ["rollout.kv_block_size=64"]).rollout.kv_block_size == 64
