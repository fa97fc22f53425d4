"""Held-out evaluation on the rollout engines' current weights: greedy task metrics, and with
a teacher the reverse KL on seeded samples and the teacher's own accuracy; `eval.suite`'s
tasks with `rlsys eval`'s task code."""

from __future__ import annotations

from rlsys.config import Config
from rlsys.data.prepared import Prepared
from rlsys.data.samplers import request_seed
from rlsys.distributed.roles import Roles
from rlsys.eval.metrics import distill_metrics, task_metrics
from rlsys.records import PromptItem, Sample
from rlsys.rewards.registry import template_format_style

EVAL_DRAWS = -1  # the "iteration" of the held-out samples' seeds: never a training iteration


class HeldOutEvaluation:
    def __init__(self, cfg: Config, roles: Roles, data: Prepared) -> None:
        self.cfg, self.roles, self.data = cfg, roles, data
        self.max_tokens = cfg.eval.max_new_tokens or cfg.rollout.max_new_tokens
        self.rows: list[dict] = []  # the last evaluation's greedy completions (eval_samples.jsonl)
        self._teacher_accuracy: dict[str, float] | None = None  # measured at the first evaluation
        self._suite_tokenizer = None

    def evaluate(self) -> dict[str, float]:
        cfg, roles, items = self.cfg, self.roles, self.data.evaluation
        samples = self._greedy(items)
        self.rows = greedy_rows(samples)
        metrics = task_metrics(
            [s.text for s in samples], [items[s.prompt_index].answer for s in samples],
            [len(s.completion_ids) for s in samples], template_format_style(cfg.data.template),
        )
        if roles.has_teacher:
            # The reverse KL is an expectation under the student: sample at temperature 1, seeded
            # per prompt (the same draws at every evaluation, and the same engine state after
            # them in two runs of one seed).
            seeds = [request_seed(cfg.run.seed, EVAL_DRAWS, i) for i in range(len(items))]
            sampled = roles.generate(items, [1.0], self.max_tokens, "eval", seeds)
            teacher = roles.teacher_scores(items, sampled, by_token=self.data.teacher_same_vocab, tag="eval")
            metrics.update(distill_metrics(teacher, [s.sampling_logprobs for s in sampled]))
            metrics.update(self.teacher_accuracy(items))
            # Eval traffic is counted under its own tag (the producer may be scoring a training
            # batch meanwhile, whose counters stay untouched); drop it.
            roles.drop_teacher_stats("eval")
        if self.data.suite_tasks:
            metrics.update(self.evaluate_suite())
        return metrics

    def teacher_accuracy(self, items: list[PromptItem]) -> dict[str, float]:
        """The teacher's own greedy accuracy on the held-out prompts; measured once, since the
        teacher does not change."""
        if self._teacher_accuracy is None:
            texts = self.roles.teacher_answers(items, self.max_tokens)
            measured = task_metrics(texts, [it.answer for it in items], [0] * len(texts),
                                    template_format_style(self.cfg.data.template))
            self._teacher_accuracy = {"teacher_accuracy": measured["accuracy"]}
        return self._teacher_accuracy

    def evaluate_suite(self) -> dict[str, float]:
        """`eval.suite` on the engines' current weights, with `rlsys eval`'s task code."""
        from transformers import AutoTokenizer

        from rlsys.eval.engine_tasks import run_tasks

        def generate(items, temperatures, max_tokens, seeds):
            return self.roles.generate(items, temperatures, max_tokens, "eval", seeds)

        if self._suite_tokenizer is None:
            self._suite_tokenizer = AutoTokenizer.from_pretrained(self.data.model_path)
        scored, _ = run_tasks(self.data.suite_tasks, self._suite_tokenizer, generate, self.roles.score_windows,
                              self.cfg.model.max_model_len, self.cfg.run.seed)
        return {f"{task}/{metric}": est.value for task, s in scored.items() for metric, est in s.metrics.items()}

    def greedy_check(self, count: int) -> list[dict]:
        """Greedy completions of the first `count` held-out prompts (as evaluation writes them)."""
        return greedy_rows(self._greedy(self.data.evaluation[:count]))

    def _greedy(self, items: list[PromptItem]) -> list[Sample]:
        """Greedy completions of `items`, or greedy episodes with the run's environment (env.type)."""
        if self.roles.episode_runner is None:
            return self.roles.generate(items, [0.0], self.max_tokens, "eval")
        seeds = [request_seed(self.cfg.run.seed, EVAL_DRAWS, i) for i in range(len(items))]
        return [t.to_sample() for t in self.roles.episodes(items, [0.0], seeds, "eval")]


def greedy_rows(samples: list[Sample]) -> list[dict]:
    """Held-out completions as eval_samples.jsonl keeps them (with their log-prob, which moves
    with the weights even when the text does not)."""
    return [{"eval_index": s.prompt_index, "completion": s.text, "logprob": sum(s.sampling_logprobs)}
            for s in samples]
