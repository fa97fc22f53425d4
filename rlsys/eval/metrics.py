"""Task metrics over completions: accuracy (flexible and strict extraction), format rate, length."""

from __future__ import annotations

from rlsys.rewards.answers import answers_match, extract_answer
from rlsys.rewards.format import format_reward


def task_metrics(completions: list[str], answers: list[str], completion_tokens: list[int],
                 format_style: str = "any") -> dict[str, float]:
    """`format_rate` counts completions in the layout `format_style` (xml, hash or any)."""
    n = max(1, len(completions))
    flexible = sum(answers_match(extract_answer(c), a) for c, a in zip(completions, answers))
    strict = sum(answers_match(extract_answer(c, strict=True), a) for c, a in zip(completions, answers))
    formatted = sum(format_reward([], completions, answers, style=format_style))
    return {
        "accuracy": flexible / n,
        "strict_accuracy": strict / n,
        "format_rate": formatted / n,
        "mean_completion_tokens": sum(completion_tokens) / n,
        "n": float(len(completions)),
    }


def distill_metrics(teacher_logprobs: list[list[float]], student_logprobs: list[list[float]]) -> dict[str, float]:
    """Token-weighted teacher log-likelihood of the student's samples and the reverse-KL
    estimate KL(S || T) per student token, sum_i (log p_S(y_i) - log p_T(y_i)) / sum_i |y_i|.
    The sums are over whole texts, so this holds when the tokenizers differ."""
    teacher_tokens = sum(len(t) for t in teacher_logprobs)
    student_tokens = sum(len(s) for s in student_logprobs)
    teacher_sum = sum(sum(t) for t in teacher_logprobs)
    student_sum = sum(sum(s) for s in student_logprobs)
    return {
        "teacher_logprob_per_token": teacher_sum / max(1, teacher_tokens),
        "student_logprob_per_token": student_sum / max(1, student_tokens),
        "reverse_kl": (student_sum - teacher_sum) / max(1, student_tokens),
    }
