"""reasoning-gym's tasks as rlsys environments (rlsys.envs.reasoning_gym_env): the tasks come from
reasoning-gym itself, the expected scores from evaluating each task's expression in Python and
from reasoning-gym's documented default scorer (partial credit len(oracle)/len(answer))."""

import pytest

from rlsys.config.env import EnvConfig
from rlsys.data.sources import load_reasoning_gym
from rlsys.envs.factory import build_environment


def _task(t):
    return {"question": t.question, "answer": t.answer, "system": "", **t.metadata}


def test_chain_sum_scored_by_reasoning_gym_with_retries():
    tasks = load_reasoning_gym("chain_sum", 6, seed=3, min_terms=3, max_terms=3)
    env = build_environment(EnvConfig(type="reasoning_gym", kwargs={"attempts": 2}))
    for t in tasks:
        right = eval(t.metadata["expression"])  # the task's own expression, by Python
        assert env.reset(_task(t)) == [{"role": "user", "content": t.question}]
        first = env.step(f"I think it is {right + 1}.")
        assert not first.done and first.reward == 0.0 and first.messages[0]["role"] == "user"
        second = env.step(f"Sorry: the answer is {right}.")
        assert second.done and second.reward == 1.0 and second.info["attempts"] == 2
        env.reset(_task(t))
        wrong = env.step(f"{right - 2}")
        assert not wrong.done and wrong.reward == 0.0  # one more try left
        last = env.step("no idea")
        assert last.done and last.reward == 0.0


def test_one_attempt_and_the_answer_tag_reading():
    t = load_reasoning_gym("chain_sum", 1, seed=5)[0]
    right = eval(t.metadata["expression"])
    env = build_environment(EnvConfig(type="reasoning_gym", kwargs={"answer": "tag"}))
    env.reset(_task(t))
    assert env.step(f"the answer is {right}").reward == 0.0  # no tag: reasoning-gym reads nothing
    env.reset(_task(t))
    out = env.step(f"<answer>{right}</answer>")
    assert out.done and out.reward == 1.0


def test_a_default_scorer_task_gives_partial_credit():
    # caesar_cipher uses reasoning-gym's default scorer: exact 1.0, the oracle inside a longer
    # answer len(oracle) / len(answer)
    t = load_reasoning_gym("caesar_cipher", 1, seed=0)[0]
    env = build_environment(EnvConfig(type="reasoning_gym", kwargs={"answer": "tag"}))
    env.reset(_task(t))
    padded = f"xx{t.answer}yy"
    out = env.step(f"<answer>{padded}</answer>")
    assert out.reward == pytest.approx(len(t.answer) / len(padded))


def test_tasks_from_elsewhere_are_refused_with_what_to_do():
    env = build_environment(EnvConfig(type="reasoning_gym"))
    with pytest.raises(ValueError, match="data.source=reasoning_gym"):
        env.reset({"question": "2 + 2?", "answer": "4", "system": ""})
    with pytest.raises(ValueError, match="attempts"):
        build_environment(EnvConfig(type="reasoning_gym", kwargs={"attempts": 0}))
