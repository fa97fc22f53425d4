"""The KV-cache block size of a vLLM engine.

vLLM-CPU's default block is 128 tokens, and its attention works on whole blocks: a 48-token
prompt costs about what a 128-token one does. With 32-token blocks (the smallest its CPU
attention accepts) the demo's prefill of 16 prompts x 8 samples took 7 s instead of 21 s on
the AVX2 kind, and sampling 32 tokens 17 s instead of 33 s (SmolLM2-135M, fp32). GPUs keep
vLLM's own default.
"""

from __future__ import annotations

CPU_BLOCK_TOKENS = 32


def kv_block_args(block_size: int | None = None) -> dict:
    """The `vllm.LLM` keyword arguments for the KV-cache block: `block_size` when given, else
    32 tokens on a CPU and vLLM's default on a GPU."""
    if block_size is not None:
        return {"block_size": block_size}
    import torch

    return {} if torch.cuda.is_available() else {"block_size": CPU_BLOCK_TOKENS}
