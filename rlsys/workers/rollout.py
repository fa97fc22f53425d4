"""RolloutWorker: one vLLM engine that samples groups of completions and takes new weights in place."""

from __future__ import annotations

import os
import time

from rlsys.models.lora import engine_max_rank
from rlsys.records import Sample
from rlsys.workers.engine_kv import kv_block_args
from rlsys.workers.engine_parallel import parallel_engine_args
from rlsys.workers.engine_process import place_engine_core
from rlsys.workers.engine_watch import EngineWatch, exit_if_engine_died
from rlsys.workers.vllm_extension import ADAPTER_ID, ADAPTER_NAME
from rlsys.errors import WeightSyncError

EXTENSION = "rlsys.workers.vllm_extension.RlsysWorkerExtension"




class RolloutWorker:
    def __init__(
        self,
        model_path: str,
        dtype: str = "bfloat16",
        max_model_len: int = 1024,
        kv_cache_gib: float = 1.0,
        enforce_eager: bool = True,
        seed: int = 0,
        name: str = "rollout-0",
        lora_rank: int | None = None,
        adapter_path: str | None = None,
        tensor_parallel_size: int = 1,
        kv_block_size: int | None = None,
        engine_process: str = "auto",
        max_num_seqs: int | None = None,
    ) -> None:
        """`adapter_path`: a PEFT adapter folder every generation uses (evaluation of a LoRA run).
        `tensor_parallel_size`: shards of the engine, each a rank of its own in the weight sync.
        `engine_process`: where vLLM's engine core runs (rlsys.workers.engine_process)."""
        from vllm import LLM

        self.name = name
        self.version = 0
        self.shards = tensor_parallel_size
        # Set once the learner's adapter has arrived; generation then runs with it.
        self.adapter = None
        lora = {"enable_lora": True, "max_lora_rank": engine_max_rank(lora_rank), "max_loras": 1} if lora_rank else {}
        started = time.perf_counter()
        place_engine_core(engine_process, tensor_parallel_size)
        self.llm = LLM(
            model=model_path,
            dtype=dtype,
            max_model_len=max_model_len,
            kv_cache_memory_bytes=int(kv_cache_gib * 2**30),
            enforce_eager=enforce_eager,
            seed=seed,
            worker_extension_cls=EXTENSION,
            disable_log_stats=True,
            # Log-probs of the distribution sampled from (after temperature and top-p), the
            # one the learner's old/new log-probs are computed for.
            logprobs_mode="processed_logprobs",
            # Whole prefills only: a prompt split over steps makes vLLM rewind the request's
            # seeded generator, which CPU generators cannot do ("CPU Generator does not use
            # offset"); per-request seeds are what makes a resumed or re-run prompt draw the same.
            enable_chunked_prefill=False,
            max_num_batched_tokens=max(max_model_len, 4096),
            **lora,
            **({"max_num_seqs": max_num_seqs} if max_num_seqs else {}),
            **kv_block_args(kv_block_size),
            **parallel_engine_args(tensor_parallel_size),
        )
        self.startup_seconds = time.perf_counter() - started
        self.watch = EngineWatch(name)  # a killed engine process ends this actor (vLLM would hang)
        if adapter_path:
            from vllm.lora.request import LoRARequest

            self.adapter = LoRARequest(ADAPTER_NAME, ADAPTER_ID, lora_path=adapter_path)

    def ping(self) -> str:
        """Who answers; an actor whose engine processes died exits here instead (Ray reports it dead)."""
        self.watch.check()
        return f"{self.name} pid={os.getpid()} version={self.version}"

    def stop_watch(self) -> None:
        """Before a deliberate shutdown: Ray may end the engine's processes before the actor's
        own, which is no death to report."""
        self.watch.stop()

    def generate(
        self,
        prompt_ids: list[list[int]],
        temperatures: list[float],
        max_tokens: int,
        top_p: float = 1.0,
        prompt_offset: int = 0,
        use_adapter: bool = True,
        seeds: list[int] | None = None,
        top_k: int = 0,
    ) -> list[Sample]:
        """Sample len(temperatures) completions per prompt, group by group.

        With one temperature the group is a single request with n=G (shared prefill);
        with several, each sample is its own request at its own temperature. With a LoRA
        adapter received, it is used unless `use_adapter` is False (the base model).
        `seeds` (one per prompt) seed its requests: sample k of a group draws with seed + k,
        so the same prompt gives the same completions on any engine, in any batch.
        """
        from vllm import SamplingParams

        def params(t: float, n: int, seed: int | None) -> SamplingParams:
            greedy = t == 0.0
            return SamplingParams(
                n=n, temperature=t, top_p=1.0 if greedy else top_p, top_k=0 if greedy else top_k,
                max_tokens=max_tokens, logprobs=0,
                seed=None if greedy else seed,
            )

        same = len(set(temperatures)) == 1
        requests, sampling = [], []
        for p, ids in enumerate(prompt_ids):
            seed = seeds[p] if seeds is not None else None
            if same:  # vLLM seeds child k of an n-request with seed + k
                requests.append({"prompt_token_ids": list(ids)})
                sampling.append(params(temperatures[0], len(temperatures), seed))
            else:
                for k, t in enumerate(temperatures):
                    requests.append({"prompt_token_ids": list(ids)})
                    sampling.append(params(t, 1, None if seed is None else seed + k))
        adapter = self.adapter if use_adapter else None
        with exit_if_engine_died(self.name):
            outputs = self.llm.generate(requests, sampling, use_tqdm=False, lora_request=adapter)
        samples: list[Sample] = []
        group = len(temperatures)
        for req_index, out in enumerate(outputs):
            prompt_index = req_index if same else req_index // group
            for k, comp in enumerate(out.outputs):
                t = temperatures[k] if same else temperatures[req_index % group]
                ids = list(comp.token_ids)
                lps = [entry[tok].logprob for tok, entry in zip(ids, comp.logprobs or [])] if comp.logprobs else []
                samples.append(
                    Sample(
                        prompt_index=prompt_offset + prompt_index,
                        prompt_ids=list(out.prompt_token_ids),
                        completion_ids=ids,
                        text=comp.text,
                        sampling_logprobs=lps,
                        finish_reason=str(comp.finish_reason),
                        weight_version=self.version,
                        temperature=t,
                    )
                )
        return samples

    def continue_turns(self, contexts: list[list[int]], max_tokens: list[int], temperatures: list[float],
                       seeds: list[int | None], stop: list[str], top_p: float = 1.0, top_k: int = 0) -> list[dict]:
        """One model turn of each multi-turn episode: continue each from its ids (the engine's
        prefix cache holds what the episode's earlier turns computed) for at most its
        `max_tokens`, stopping at the end-of-turn token or a `stop` string (kept in the
        text, so that the environment reads the whole tool call). The sampled ids come back
        as sampled, with their log-probs and this engine's weight version."""
        from vllm import SamplingParams

        requests = [{"prompt_token_ids": list(c)} for c in contexts]
        params = [SamplingParams(n=1, temperature=t, top_p=1.0 if t == 0 else top_p, top_k=0 if t == 0 else top_k,
                                 max_tokens=m, logprobs=0, seed=None if t == 0 else seed, stop=stop or None,
                                 include_stop_str_in_output=True)
                  for m, t, seed in zip(max_tokens, temperatures, seeds)]
        with exit_if_engine_died(self.name):
            outputs = self.llm.generate(requests, params, use_tqdm=False, lora_request=self.adapter)
        turns = []
        for out in outputs:
            comp = out.outputs[0]
            ids = list(comp.token_ids)
            turns.append({"ids": ids, "logprobs": [entry[tok].logprob for tok, entry in zip(ids, comp.logprobs)],
                          "text": comp.text, "finish_reason": str(comp.finish_reason), "version": self.version})
        return turns

    def score_windows(self, contexts: list[list[int]], targets: list[list[int]]) -> list[list[float]]:
        """log p(targets[i][j] | contexts[i], targets[i][:j]) under the engine's current weights
        (vLLM prompt log-probs), for held-out perplexity during training."""
        from vllm import SamplingParams

        params = SamplingParams(max_tokens=1, temperature=1.0, prompt_logprobs=0)
        requests = [{"prompt_token_ids": list(c) + list(t)} for c, t in zip(contexts, targets)]
        with exit_if_engine_died(self.name):
            outputs = self.llm.generate(requests, params, use_tqdm=False, lora_request=self.adapter)
        out = []
        for c, t, o in zip(contexts, targets, outputs):
            entries = o.prompt_logprobs[len(c):]
            out.append([entry[tok].logprob for tok, entry in zip(t, entries)])
        return out

    def sync_ranks(self) -> int:
        """Ranks this engine takes in the weight-sync group: one per shard."""
        return self.shards

    def init_sync_group(self, backend: str, host: str, port: int, rank: int, world_size: int, timeout_s: float) -> None:
        """Shard k of this engine joins as rank `rank + k`."""
        self.llm.collective_rpc("rlsys_init_sync_group", args=(backend, host, port, rank, world_size, timeout_s))

    def receive_weights(self, wire_plan: dict) -> dict:
        """Take the broadcast weights; raise `WeightSyncError` naming this engine, the shard and
        the tensors unless every shard loaded every tensor it computes with. The version moves
        only then. The probes' checksums are summed over the shards, with how many copies of
        each part they hold together (see `rlsys_receive_weights`)."""
        method = "rlsys_receive_adapter" if "adapter" in wire_plan else "rlsys_receive_weights"
        with exit_if_engine_died(self.name):
            reports = self.llm.collective_rpc(method, args=(wire_plan,))
        # Cached KV blocks were computed by the old weights.
        self.llm.reset_prefix_cache()
        for shard, report in enumerate(reports):
            self._check_shard(shard, report, wire_plan["version"])
        self.version = int(reports[0]["version"])
        if "adapter" in wire_plan:
            from vllm.lora.request import LoRARequest

            # The adapter is already installed from tensors under this id; the path is never read.
            self.adapter = LoRARequest(ADAPTER_NAME, ADAPTER_ID, lora_path=f"rlsys-in-memory/{self.name}")
        return {"version": self.version, "shards": len(reports), **sum_over_shards(reports)}

    def _check_shard(self, shard: int, report: dict, version: int) -> None:
        problems = []
        if report["version"] != version:
            problems.append(f"it reports weights version {report['version']}")
        if report["consumed"] != report["planned"]:
            problems.append(f"the loader took {report['consumed']} of {report['planned']} tensors sent")
        if report["missing"]:
            shown = ", ".join(report["missing"][:5]) + (" ..." if len(report["missing"]) > 5 else "")
            problems.append(f"{len(report['missing'])} weight(s) were not loaded and keep their old values: {shown}")
        if report["unexpected"]:
            problems.append(f"it has no place for {', '.join(report['unexpected'][:5])}")
        if problems:
            where = f"{self.name} shard {shard} of {self.shards}" if self.shards > 1 else self.name
            raise WeightSyncError(f"{where} (weights version {self.version} -> {version}): " + "; ".join(problems))

    def weight_keys(self) -> list[str]:
        return self.llm.collective_rpc("rlsys_weight_keys")[0]

    def raw_receive(self, nbytes: int) -> int:
        return self.llm.collective_rpc("rlsys_raw_receive", args=(nbytes,))[0]

    def checksums(self, keys: list[str] | None = None) -> dict[str, tuple[float, float]]:
        """Checksums of the engine's weights by key, summed over its shards."""
        shards = self.llm.collective_rpc("rlsys_checksums", args=(keys,))
        return {key: tuple(sum(s[key][i] for s in shards) for i in range(2)) for key in shards[0]}


def sum_over_shards(reports: list[dict]) -> dict:
    """The shards' probe checksums added up (checksums are sums, so shards of one tensor add up
    to the whole) and, per probe, how many copies of each of its parts the shards hold together:
    1 for a tensor split over them, the shard count for one each shard holds whole."""
    probes = {key: tuple(sum(r["probes"][key][i] for r in reports) for i in range(2)) for key in reports[0]["probes"]}
    copies = {key: [sum(r["copies"][key][p] for r in reports) for p in range(len(reports[0]["copies"][key]))]
              for key in reports[0]["probes"]}
    return {"probes": probes, "copies": copies}
