"""reasoning-gym's tasks as environments, scored by reasoning-gym's own `score_answer`.

reasoning-gym (PyPI `reasoning-gym`, already a dependency: it generates the demo's data) ships
over a hundred procedurally generated tasks, each with a scorer that knows the task (partial
credit, equivalent forms). This adapter runs them in rlsys's episode loop: one turn (the model
answers, reasoning-gym scores it), or up to `attempts` turns where a wrong answer is told so and
the model answers again. The score is the turn's reward (`env.turn_return` adds turns up); the
run's `reward.terms` score the last turn as well, so a recipe that wants reasoning-gym's score
alone sets `reward.terms: []`.
"""

from __future__ import annotations

from typing import Literal

from rlsys.envs.base import Environment, StepResult
from rlsys.rewards.answers import extract_answer

FEEDBACK = "That is not right. Think again and give only the final answer."


class ReasoningGymEnvironment(Environment):
    def __init__(self, attempts: int = 1, answer: Literal["tag", "last_number"] = "last_number",
                 feedback: str = FEEDBACK) -> None:
        """`answer`: how the model's answer is read from its turn: `tag` (reasoning-gym's own
        convention, the last `<answer>...</answer>`), `last_number` (an answer tag, else '####',
        else the turn's last number: rlsys's `correctness` reading)."""
        if attempts < 1:
            raise ValueError(f"attempts ({attempts}) must be at least 1")
        if answer not in ("tag", "last_number"):
            raise ValueError(f"answer {answer!r}: `tag` or `last_number`")
        self.attempts, self.answer, self.feedback = attempts, answer, feedback
        self.entry: dict = {}
        self.turn = 0

    def reset(self, task: dict) -> list[dict]:
        import reasoning_gym

        meta = task.get("reasoning_gym_metadata") or {}
        name = meta.get("source_dataset") or task.get("source")
        if not name:
            raise ValueError("a reasoning_gym environment needs tasks from data.source=reasoning_gym "
                             "(the task names its reasoning-gym dataset)")
        self.score = reasoning_gym.get_score_answer_fn(name)
        self.entry = {"question": task["question"], "answer": task["answer"], "metadata": meta}
        self.turn = 0
        system = [{"role": "system", "content": task["system"]}] if task.get("system") else []
        return [*system, {"role": "user", "content": task["question"]}]

    def _read(self, text: str) -> str | None:
        if self.answer == "tag":
            from reasoning_gym.utils import extract_answer as tagged

            return tagged(text)
        return extract_answer(text)

    def step(self, assistant_text: str) -> StepResult:
        self.turn += 1
        answer = self._read(assistant_text)
        score = float(self.score(answer, self.entry)) if answer is not None else 0.0
        if score >= 1.0 or self.turn >= self.attempts:
            return StepResult(reward=score, done=True, info={"score": score, "attempts": self.turn})
        return StepResult(messages=[{"role": "user", "content": self.feedback}], info={"score": score})
