"""TeacherService: scores (prompt, completion) pairs with a teacher model's per-token log-probs.

The teacher renders the question with its own tokenizer and chat template (optionally with
a richer system prompt: context distillation), then scores the completion:

- by TEXT (`completion_ids=None`): the completion text is tokenized by the teacher, so a
  teacher with another vocabulary (Gemma scoring Mistral) still gives sequence rewards;
- by TOKEN ids (same vocabulary only): one teacher log-prob per student token, which
  per-token rewards (MiniLLM) need.

A finished completion is scored with the teacher's end-of-turn token appended, so stopping
early is not free and an empty completion is scored as the choice to stop at once.

Two backends: vLLM (`prompt_logprobs`, the fast path) and transformers (bf16 with
`device_map` offload for a teacher bigger than one GPU). Requests from many callers are
merged by `Batcher` into one forward pass of up to `max_batch_sequences`.
"""

from __future__ import annotations

import os

from rlsys.config import TeacherConfig
from rlsys.data.templates import prompt_token_ids, render_prompt
from rlsys.models.dtypes import torch_dtype
from rlsys.records import ScoreRequest
from rlsys.workers.engine_kv import kv_block_args
from rlsys.workers.engine_parallel import parallel_engine_args
from rlsys.workers.engine_process import place_engine_core
from rlsys.workers.engine_watch import EngineWatch, exit_if_engine_died
from rlsys.workers.teacher_batcher import Batcher


class VllmScorer:
    """Teacher log-probs by vLLM's `prompt_logprobs` over prompt + completion."""

    def __init__(self, model_path: str, cfg: TeacherConfig, max_model_len: int, seed: int) -> None:
        from vllm import LLM

        place_engine_core(cfg.engine_process, cfg.tensor_parallel_size)
        self.llm = LLM(
            model=model_path, dtype=cfg.dtype, max_model_len=max_model_len,
            kv_cache_memory_bytes=int(cfg.kv_cache_gib * 2**30), enforce_eager=True, seed=seed,
            disable_log_stats=True, **kv_block_args(), **parallel_engine_args(cfg.tensor_parallel_size),
        )
        self.watch = EngineWatch("teacher")  # a killed engine process ends this actor (vLLM would hang)

    def logprobs(self, sequences: list[tuple[list[int], list[int]]]) -> list[list[float]]:
        from vllm import SamplingParams

        params = SamplingParams(max_tokens=1, prompt_logprobs=0, temperature=0.0)
        requests = [{"prompt_token_ids": list(p) + list(c)} for p, c in sequences]
        with exit_if_engine_died("teacher"):
            outputs = self.llm.generate(requests, params, use_tqdm=False)
        scores = []
        for (prompt, completion), out in zip(sequences, outputs):
            entries = out.prompt_logprobs[len(prompt) : len(prompt) + len(completion)]
            scores.append([entry[tok].logprob for tok, entry in zip(completion, entries)])
        return scores


    def answers(self, prompts: list[list[int]], max_tokens: int, tokenizer) -> list[str]:
        from vllm import SamplingParams

        params = SamplingParams(max_tokens=max_tokens, temperature=0.0)
        with exit_if_engine_died("teacher"):
            outputs = self.llm.generate([{"prompt_token_ids": list(p)} for p in prompts], params, use_tqdm=False)
        return [o.outputs[0].text for o in outputs]


class HfScorer:
    """Teacher log-probs by a transformers forward pass; `device_map` can spread or offload."""

    def __init__(self, model_path: str, cfg: TeacherConfig) -> None:
        import torch
        from transformers import AutoModelForCausalLM

        self.torch = torch
        dtype = torch_dtype(cfg.dtype)
        kwargs = {"device_map": cfg.device_map} if cfg.device_map else {}
        self.model = AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype, **kwargs).eval()
        from rlsys.models.logprobs import check_logit_path

        check_logit_path(self.model, f"teacher {model_path}")  # refuses unknown logit post-processing
        self.micro_batch, self.temperature = cfg.hf_micro_batch, cfg.temperature
        if torch.cuda.is_available():
            if not cfg.device_map:  # without a map transformers leaves the model on the CPU
                self.model.to("cuda")
        else:
            # Ray gives a fractional-CPU actor one thread; the phases of a run do not overlap.
            torch.set_num_threads(os.cpu_count() or 1)

    def logprobs(self, sequences: list[tuple[list[int], list[int]]]) -> list[list[float]]:
        from rlsys.models.logprobs import completion_logprobs, pack_sequences

        pad = self.model.config.pad_token_id or 0
        order = sorted(range(len(sequences)), key=lambda i: len(sequences[i][0]) + len(sequences[i][1]))
        out: list[list[float]] = [[] for _ in sequences]
        with self.torch.no_grad():
            for start in range(0, len(order), self.micro_batch):
                idx = [i for i in order[start : start + self.micro_batch] if sequences[i][1]]
                if not idx:
                    continue
                batch = pack_sequences([sequences[i][0] for i in idx], [sequences[i][1] for i in idx], pad)
                lp = completion_logprobs(self.model, batch, temperature=self.temperature).logprobs.float().cpu()
                for row, i in enumerate(idx):
                    out[i] = lp[row, : len(sequences[i][1])].tolist()
        return out


    def answers(self, prompts: list[list[int]], max_tokens: int, tokenizer) -> list[str]:
        from rlsys.models.greedy import greedy_answers

        return greedy_answers(self.model, tokenizer, prompts, max_tokens, self.micro_batch)


class TeacherScorer:
    """Renders the teacher's prompt and tokenizes the completion, then asks a backend."""

    def __init__(self, model_path: str, cfg: TeacherConfig, template: str, system_prompt: str | None,
                 max_model_len: int, seed: int = 0) -> None:
        from transformers import AutoTokenizer

        self.cfg, self.template = cfg, template
        self.system_prompt = cfg.system_prompt if cfg.system_prompt is not None else system_prompt
        self.tokenizer = AutoTokenizer.from_pretrained(model_path)
        end = cfg.end_of_turn or self.tokenizer.eos_token
        self.end_id = self.tokenizer.convert_tokens_to_ids(end) if end else None
        self.max_model_len = max_model_len
        self.backend = (VllmScorer(model_path, cfg, max_model_len, seed) if cfg.backend == "vllm"
                        else HfScorer(model_path, cfg))
        self._prompt_cache: dict[tuple[str, str], list[int]] = {}

    def prompt_ids(self, question: str, answer: str = "", raw: str = "") -> list[int]:
        key = (question, answer, raw)
        if key not in self._prompt_cache:
            user = self.cfg.question_template.format(question=question, answer=answer, raw_question=raw or question)
            text = render_prompt(self.tokenizer, user, self.template, self.system_prompt)
            self._prompt_cache[key] = prompt_token_ids(self.tokenizer, text)
        return self._prompt_cache[key]

    def completion_ids(self, req: ScoreRequest) -> list[int]:
        if req.completion_ids is not None:
            return list(req.completion_ids)
        ids = self.tokenizer(req.completion_text, add_special_tokens=False).input_ids
        if req.finished and self.end_id is not None:
            ids.append(self.end_id)
        return ids

    def answers(self, questions: list[tuple[str, str, str]], max_tokens: int) -> list[str]:
        """The teacher's own greedy answers to (question, reference answer, raw question), from
        the prompt it scores with: its task accuracy, which distillation should move toward."""
        return self.backend.answers([self.prompt_ids(*q) for q in questions], max_tokens, self.tokenizer)

    def score(self, requests: list[ScoreRequest]) -> list[list[float]]:
        sequences = []
        for req in requests:
            prompt, completion = self.prompt_ids(req.question, req.answer, req.raw_question), self.completion_ids(req)
            # Keep the end of an over-long completion out rather than fail the batch; the
            # reward then covers the tokens that fit.
            room = max(0, self.max_model_len - len(prompt) - 1)
            sequences.append((prompt, completion[:room]))
        return self.backend.logprobs(sequences)


class TeacherService:
    """A scorer behind a request batcher; a Ray async actor in runs (see distributed.actors)."""

    def __init__(self, model_path: str, cfg: TeacherConfig, template: str, system_prompt: str | None,
                 max_model_len: int, seed: int = 0, name: str = "teacher-0") -> None:
        self.name = name
        self.scorer = TeacherScorer(model_path, cfg, template, system_prompt, max_model_len, seed)
        self.batcher = Batcher(self.scorer.score, cfg.max_batch_sequences, cfg.max_wait_ms / 1000.0)

    def ping(self) -> str:
        return f"{self.name} pid={os.getpid()}"

    def vocab(self) -> dict[str, int]:
        return self.scorer.tokenizer.get_vocab()

    async def score(self, requests: list[ScoreRequest], tag: str = "train") -> list[list[float]]:
        """`tag`: whose traffic this is (training or evaluation), counted apart in the stats."""
        return await self.batcher.submit(requests, tag)

    def take_stats(self, tag: str = "train") -> dict[str, float]:
        return self.batcher.take_stats(tag)

    def answers(self, questions: list[tuple[str, str, str]], max_tokens: int) -> list[str]:
        return self.scorer.answers(questions, max_tokens)
