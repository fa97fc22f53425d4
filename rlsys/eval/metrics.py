"""Task metrics over completions: accuracy (flexible and strict extraction), format rate, length."""

from __future__ import annotations

from rlsys.eval.tasks.accuracy import answer_scores


def task_metrics(completions: list[str], answers: list[str], completion_tokens: list[int],
                 format_style: str = "any") -> dict[str, float]:
    """The held-out metrics of a training run, scored as `rlsys eval`'s accuracy task scores
    (`answer_scores`); `format_rate` counts completions in the layout `format_style`."""
    n = max(1, len(completions))
    scores = [answer_scores(c, a, format_style) for c, a in zip(completions, answers)]
    return {
        "accuracy": sum(s["accuracy"] for s in scores) / n,
        "strict_accuracy": sum(s["strict_accuracy"] for s in scores) / n,
        "format_rate": sum(s["format_rate"] for s in scores) / n,
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
