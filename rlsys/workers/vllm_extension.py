"""Methods mixed into every vLLM worker (`worker_extension_cls`) to receive broadcast weights.

Names start with `rlsys_` because vLLM workers already define `update_weights` and
friends, and a clash stops the engine at start-up. Tensors cannot travel as rpc
arguments, so the rpc carries only the plan; the bytes come through the process group.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from rlsys.transport.weight_sync import (
    SyncPlan,
    bucket_bytes,
    broadcast,
    close_group,
    create_group,
    tensor_checksum,
    unpack_bucket,
)


# The learner's adapter lives in the engine under one id; each sync replaces it in place.
ADAPTER_ID = 1
ADAPTER_NAME = "rlsys-policy"


class RlsysWorkerExtension:
    def rlsys_init_sync_group(
        self, backend: str, host: str, port: int, rank: int, world_size: int, timeout_s: float
    ) -> None:
        """`rank` is the engine's first rank; each of its shards (vLLM workers) joins as `rank +`
        its own rank within the engine, so every shard receives every broadcast."""
        close_group(getattr(self, "_rlsys_sync", None))  # the group this one replaces (restart, scale)
        self._rlsys_sync = None
        self._rlsys_sync = create_group(backend, host, port, rank + self._rlsys_shard(), world_size, timeout_s)

    def _rlsys_shard(self) -> int:
        return int(getattr(self, "rank", 0))

    def _rlsys_stream(self, plan: SyncPlan, device: torch.device) -> Iterator[tuple[str, torch.Tensor]]:
        for bucket in plan.buckets:
            flat = torch.empty(bucket_bytes(bucket), dtype=torch.uint8, device=device)
            broadcast(self._rlsys_sync, flat)
            yield from unpack_bucket(flat, bucket)

    def _rlsys_staged(self, plan: SyncPlan, device: torch.device) -> list[tuple[str, torch.Tensor]]:
        """Every bucket received before any weight is touched: a sync cut short by a peer
        that died raises here and leaves the engine's weights whole."""
        return list(self._rlsys_stream(plan, device))

    def rlsys_receive_weights(self, wire_plan: dict) -> dict:
        """Load the broadcast weights in place, then report what was loaded: the HF names the
        engine expects but did not get (`missing`), names it got but has no place for
        (`unexpected`), how many tensors the loader consumed, and checksums of the engine
        keys that hold the plan's `probes`. The caller decides; vLLM itself only logs."""
        plan = SyncPlan.from_wire(wire_plan)
        received: list[str] = []

        def recorded(stream: Iterator[tuple[str, torch.Tensor]]) -> Iterator[tuple[str, torch.Tensor]]:
            for name, tensor in stream:
                received.append(name)
                yield name, tensor

        # One reload over a lazy stream: vLLM's layerwise reload expects every weight in
        # one call, and the stream keeps only one bucket in memory at a time.
        # Read the device now: during the reload the parameters sit on the meta device.
        device = getattr(self, "device", None) or torch.device("cpu")
        # Staged (the default): one copy of the weights in memory while they arrive; else a lazy
        # stream that holds one bucket, and a sync cut short leaves the engine to be replaced.
        stream = self._rlsys_staged(plan, device) if wire_plan.get("staged", True) else self._rlsys_stream(plan, device)
        self.model_runner.reload_weights(weights_iterator=recorded(iter(stream)))
        self._rlsys_repack_kept_weights()
        self._rlsys_version = plan.version
        keys = self.rlsys_weight_keys()
        expected = {part for key in keys for part in key.split("+")}
        probes = set(wire_plan.get("probes", ()))
        checked = self.rlsys_checksums([k for k in keys if probes & set(k.split("+"))]) if probes else {}
        return {
            "version": plan.version,
            "planned": sum(len(b) for b in plan.buckets),
            "consumed": len(received),
            "missing": sorted(expected - set(received)),
            "unexpected": sorted(set(received) - expected),
            "probes": checked,
            "copies": self._rlsys_copies(list(checked)),
        }

    def _rlsys_copies(self, keys: list[str]) -> dict[str, list[float]]:
        """For each engine key, the share of each HF part this shard holds: 1/shards of a tensor
        split over the shards, 1 of one every shard holds whole (norms), and for fused q/k/v
        with fewer key-value heads than shards, the k and v heads this shard repeats."""
        from vllm.distributed import get_tensor_model_parallel_world_size
        from vllm.model_executor.layers.linear import ColumnParallelLinear, QKVParallelLinear, RowParallelLinear
        from vllm.model_executor.layers.vocab_parallel_embedding import VocabParallelEmbedding

        shards = get_tensor_model_parallel_world_size()
        out = {}
        for key, module, leaf, _ in self._rlsys_engine_tensors():
            if key not in keys:
                continue
            parts = len(key.split("+"))
            if shards == 1:
                out[key] = [1.0] * parts
            elif isinstance(module, QKVParallelLinear):
                kv = module.num_kv_head_replicas / shards
                out[key] = [1.0 / shards, kv, kv]
            elif isinstance(module, RowParallelLinear) and leaf == "bias":  # added once, after the reduce
                out[key] = [1.0] * parts
            elif isinstance(module, (ColumnParallelLinear, RowParallelLinear, VocabParallelEmbedding)):
                out[key] = [1.0 / shards] * parts
            else:
                out[key] = [1.0] * parts
        return out

    def _rlsys_repack_kept_weights(self) -> None:
        """On the CPU, a layer that keeps its weight and also computes through a packed copy
        (`cpu_linear`) is the output projection tied to the embedding: the reload loads the
        embedding but skips the tied head, whose packed copy would keep the old weights (the
        logits drifting from the learner's as training moves the embedding). Pack it again."""
        for module in self.model_runner.get_model().modules():
            weight = getattr(module, "weight", None)
            method = getattr(module, "quant_method", None)
            if hasattr(module, "cpu_linear") and weight is not None and weight.numel() and method is not None:
                method.process_weights_after_loading(module)

    def rlsys_receive_adapter(self, wire_plan: dict) -> dict:
        """Install the broadcast LoRA adapter from tensors (nothing touches the disk) under
        one fixed id, replacing the one before, and report as `rlsys_receive_weights` does:
        `unexpected` lists adapter modules this engine has no LoRA layer for."""
        from vllm.lora.lora_model import LoRAModel
        from vllm.lora.peft_helper import PEFTHelper

        plan = SyncPlan.from_wire(wire_plan)
        worker_manager = getattr(self.model_runner, "lora_manager", None)
        if worker_manager is None:
            raise RuntimeError("this engine was started without LoRA support; start it with lora_rank set")
        device = getattr(self, "device", None) or torch.device("cpu")
        tensors = {name: t.clone() for name, t in self._rlsys_staged(plan, device)}
        # Checksums as received: vLLM folds alpha / r into B in place when it loads the adapter.
        probes = set(wire_plan.get("probes", ()))
        received = {name: tensor_checksum(t) for name, t in tensors.items() if name in probes}
        helper = PEFTHelper.from_dict(wire_plan["adapter"])
        helper.validate_legal(worker_manager.lora_config)
        model = self.model_runner.get_model()
        mapper = getattr(model, "hf_to_vllm_mapper", None)
        adapter = LoRAModel.from_lora_tensors(
            lora_model_id=ADAPTER_ID, tensors=tensors, peft_helper=helper, device="cpu",
            dtype=worker_manager.lora_config.lora_dtype, model_vocab_size=worker_manager.vocab_size,
            weights_mapper=mapper.get_rename_mapper() if mapper is not None else None)
        # vLLM's public path (a LoRARequest with load_inplace) reads a folder; this is that
        # path's body (load, remove the old adapter, add, activate) with the tensors in hand.
        manager = worker_manager._adapter_manager
        manager.remove_adapter(ADAPTER_ID)
        manager.add_adapter(adapter)
        manager.activate_adapter(ADAPTER_ID)
        self._rlsys_version = plan.version
        return {
            "version": plan.version,
            "planned": sum(len(b) for b in plan.buckets),
            "consumed": len(tensors),
            "missing": [],
            "unexpected": sorted(set(adapter.loras) - set(manager.modules)),
            "probes": received,
            "copies": {name: [1.0] for name in received},  # as received: every shard gets the whole adapter
        }

    def rlsys_raw_receive(self, nbytes: int) -> int:
        """One bare broadcast of `nbytes` (the benchmark's baseline for a sync)."""
        flat = torch.empty(nbytes, dtype=torch.uint8, device=getattr(self, "device", None) or torch.device("cpu"))
        broadcast(self._rlsys_sync, flat)
        return nbytes

    def _rlsys_engine_tensors(self) -> Iterator[tuple[str, torch.nn.Module, str, torch.Tensor]]:
        """(key, module, leaf name, parameter) for every distinct tensor the engine computes
        with. The key is the HF name it holds; vLLM fuses q/k/v and gate/up projections, so
        a fused tensor's key lists its parts joined by '+'. A tied weight (lm_head =
        embed_tokens) is one tensor."""
        model = self.model_runner.get_model()
        packed = getattr(model, "packed_modules_mapping", {}) or {}
        seen = set()
        for module_name, module in model.named_modules():
            for leaf, param in module.named_parameters(recurse=False):
                if param.numel() and param.data_ptr() in seen:
                    continue
                seen.add(param.data_ptr())
                prefix, _, short = module_name.rpartition(".")
                if short in packed:
                    key = "+".join(f"{prefix}.{p}.{leaf}" if prefix else f"{p}.{leaf}" for p in packed[short])
                else:
                    key = f"{module_name}.{leaf}" if module_name else leaf
                yield key, module, leaf, param

    def rlsys_weight_keys(self) -> list[str]:
        return [key for key, *_ in self._rlsys_engine_tensors()]

    def rlsys_checksums(self, keys: list[str] | None = None) -> dict[str, tuple[float, float]]:
        """Checksums of the weights the engine computes with, by engine key (see
        `_rlsys_engine_tensors`); a fused tensor's checksum is the sum of its parts'. On the
        CPU, vLLM moves linear weights into packed oneDNN/SGL buffers and leaves an empty
        parameter; those are read back by multiplying the packed layer with an identity."""
        wanted = None if keys is None else set(keys)
        out = {}
        for key, module, leaf, param in self._rlsys_engine_tensors():
            if wanted is not None and key not in wanted:
                continue
            tensor = param
            if leaf == "weight" and param.numel() == 0 and hasattr(module, "cpu_linear"):
                tensor = _read_packed_linear_weight(module, param.dtype)
            out[key] = tensor_checksum(tensor)
        return out


def _read_packed_linear_weight(module: torch.nn.Module, dtype: torch.dtype) -> torch.Tensor:
    in_features = getattr(module, "input_size_per_partition", None) or module.input_size
    eye = torch.eye(in_features, dtype=dtype)
    with torch.no_grad():
        return module.cpu_linear(eye, None, None).t()
