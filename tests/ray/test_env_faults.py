"""Environments that go wrong inside real episodes (real environment actors, a real vLLM engine
on the tiny model): a step that raises, a step that hangs past the step timeout, an actor that
dies in a step (os._exit, as a SIGKILL would end it), and tool output of 10 MB and of invalid
UTF-8 from the sandboxed Python tool. Each ends as a counted, named failure or a re-run
episode, never a hang; the other episodes of the batch finish."""

import os
import sys
import time
from pathlib import Path

import pytest

from rlsys.config import Config
from rlsys.envs.base import Environment, StepResult
from rlsys.envs.tools.base import run_tool
from rlsys.envs.tools.python_sandbox import PythonSandbox
from rlsys.workers.environment import EnvironmentWorker

pytestmark = pytest.mark.ray

MARKS = Path(os.environ.get("RLSYS_CACHE", "/tmp")) / "env-fault-marks"


class Faulty(Environment):
    """What its episode's question says: 'raise', 'hang once', 'die once', 'huge', 'bad utf8', or
    nothing (two turns, then done). 'once' faults leave a mark file, so the re-run goes through."""

    def reset(self, task):
        self.question, self.turns = task["question"], 0
        return [{"role": "user", "content": self.question}]

    def step(self, text):
        self.turns += 1
        q, mark = self.question, MARKS / self.question.replace(" ", "_")
        if q == "raise":
            raise RuntimeError("the environment broke")
        if q in ("hang once", "die once") and not mark.exists():
            mark.write_text("x")
            if q == "die once":
                os._exit(1)
            time.sleep(120)
        if q in ("huge", "bad utf8"):
            code = "import sys\nsys.stdout.write('y' * 10_000_000)" if q == "huge" else \
                "import sys\nsys.stdout.buffer.write(b'ok \\xff\\xfe')"
            out = run_tool(PythonSandbox(max_output_bytes=4096), {"code": code}, 300)
            return StepResult(messages=[{"role": "tool", "content": out.text}], done=self.turns >= 2,
                              tool_calls=1, tool_errors=int(out.error))
        return StepResult(messages=[{"role": "user", "content": "go on"}], done=self.turns >= 2)


class FaultyWorker(EnvironmentWorker):
    def __init__(self, cfg):
        super().__init__(cfg)

    async def _reset(self, key, task):
        env = self.envs[key] = Faulty()
        return env.reset(task)


def test_bad_environments_and_tools_end_as_counted_failures_or_reruns(local_ray, tiny_model_path, tmp_path):
    import cloudpickle

    from rlsys.distributed.actors import env_pool, rollout_pool
    from rlsys.distributed.episode_runner import EpisodeRunner
    from rlsys.envs.tokens import TurnTokens
    from rlsys.observability.episode_metrics import episode_metrics
    from rlsys.records import PromptItem
    from transformers import AutoTokenizer

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    MARKS.mkdir(parents=True, exist_ok=True)
    for p in MARKS.iterdir():
        p.unlink()
    cfg = Config.model_validate({
        "model": {"path": tiny_model_path, "dtype": "float32", "max_model_len": 512},
        "rollout": {"num_workers": 1, "kv_cache_gib": 0.25, "prompts_per_iteration": 3, "group_size": 2,
                    "max_new_tokens": 8, "num_cpus": 0.25},
        "learner": {"mini_batch_size": 6, "micro_batch_size": 6},
        "env": {"type": "tools", "max_turns": 4, "max_tokens": 400, "step_timeout_s": 4, "num_workers": 3,
                "max_restarts": 3},
    })
    # round-robin over 3 actors: env-0 holds fine and die once, env-1 raise and huge, env-2 hang once and bad utf8
    questions = ["fine", "raise", "hang once", "die once", "huge", "bad utf8"]
    items = [PromptItem(q, [1], q, "0") for q in questions]
    rollout, envs = rollout_pool(cfg, tiny_model_path), env_pool(cfg, cls=FaultyWorker)
    try:
        runner = EpisodeRunner(cfg, rollout, envs, TurnTokens(AutoTokenizer.from_pretrained(tiny_model_path)), "")
        started = time.perf_counter()
        trajectories = runner.run(items, [1.0], list(range(6)), "generation", 120)
        seconds = time.perf_counter() - started
    finally:
        rollout.kill()
        envs.kill()
    by_q = dict(zip(questions, trajectories))
    assert by_q["fine"].status == "done" and len(by_q["fine"].turn_ends) == 2
    assert by_q["raise"].status == "failed" and "RuntimeError: the environment broke" in by_q["raise"].error
    # lost with their actor (an overrun: killed and restarted; a death), then re-run once from the start
    for q in ("hang once", "die once"):
        assert by_q[q].status == "done" and len(by_q[q].turn_ends) == 2, (q, by_q[q])
    # an actor's loss loses every episode it held: fine and bad utf8 were re-run with them
    # (a reset sent to an actor while Ray restarts it is lost too, and tried once more)
    assert runner.restarted == 4 and envs.lost >= 2
    for q in ("huge", "bad utf8"):
        t = by_q[q]
        assert t.status == "done" and t.tool_calls == 2 and t.tool_errors == 2
    tok = AutoTokenizer.from_pretrained(tiny_model_path)
    huge = tok.decode([i for i, m in zip(by_q["huge"].completion_ids, by_q["huge"].loss_mask) if not m])
    assert "more than 4096 bytes" in huge and len(huge) < 2000
    bad = tok.decode([i for i, m in zip(by_q["bad utf8"].completion_ids, by_q["bad utf8"].loss_mask) if not m])
    assert "not valid UTF-8" in bad
    metrics = episode_metrics(trajectories, runner.restarted)
    assert metrics["rollout/env_failures"] == 1.0 and metrics["rollout/env_restarts"] == 4.0
    assert metrics["rollout/tool_errors"] == 4.0
    assert seconds < 60, seconds  # a hang costs its step timeout, not the 120 s it sleeps
