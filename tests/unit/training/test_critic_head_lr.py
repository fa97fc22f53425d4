"""`critic.head_lr`: the value head takes its own optimiser group through DeepSpeed. An AdamW
step moves a parameter by at most about its group's rate (|m^ / sqrt(v^)| <= ~1 early on;
0.74 for a first gradient at step 2), so two real critic steps on the tiny model show each
group's rate. The head starts at 0, so the trunk first gets a gradient at the second step.
Runs in a child process: a DeepSpeed engine joins a process group, which a test process
should not keep."""

import subprocess
import sys
import textwrap

from ...conftest import REPO

SCRIPT = """
import socket, torch
from rlsys.config import load_config
from rlsys.records import TrainItem
from rlsys.training.critic import value_head
from rlsys.workers.critic import Critic
from rlsys.models.catalog import resolve_model

cfg = load_config(None, ["algorithm.type=ppo", "rollout.prompts_per_iteration=2", "rollout.group_size=2",
                         "learner.mini_batch_size=4", "learner.micro_batch_size=2", "critic.lr=1e-5",
                         "critic.zero_stage=0", "critic.value_clip=null", "learner.weight_decay=0"])
s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
critic = Critic(resolve_model("tiny-random"), cfg.critic_learner(), None, "float32", 0, 1, "127.0.0.1", port,
                10, 0, head_lr=HEAD_LR)
model = critic.engine.module
head = {id(p) for p in value_head(model).parameters()}
before = {n: p.detach().clone() for n, p in model.named_parameters()}
items = [TrainItem([5, 6, 7], [8 + i, 9], 0.0, returns=[1.0 * (i % 2), 0.5], old_values=[0.0, 0.0]) for i in range(4)]
for _ in range(2):  # the head starts at 0, so the trunk has no gradient before the second step
    critic.train_on_batch(items)
moved = {"head": 0.0, "trunk": 0.0}
for n, p in model.named_parameters():
    key = "head" if id(p) in head else "trunk"
    moved[key] = max(moved[key], float((p.detach() - before[n]).abs().max()))
print(moved["head"], moved["trunk"])
"""


def _steps(*head_lrs: str) -> list[tuple[float, float]]:
    """(head, trunk) moves for each head_lr, the child processes run side by side (most of
    each is imports and DeepSpeed's start, on one core)."""
    procs = [subprocess.Popen([sys.executable, "-c", textwrap.dedent(SCRIPT.replace("HEAD_LR", lr))], cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for lr in head_lrs]
    moves = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-3000:]
        head, trunk = out.strip().splitlines()[-1].split()
        moves.append((float(head), float(trunk)))
    return moves


def test_the_value_head_steps_at_its_own_rate_and_the_trunk_at_the_critics():
    (head, trunk), (head_same, trunk_same) = _steps("1e-2", "None")  # None: no head_lr, one rate for all
    assert 0.9e-2 < head < 2.1e-2
    assert 0.5e-5 < trunk < 1.1e-5
    assert 0.9e-5 < head_same < 2.1e-5 and 0.5e-5 < trunk_same < 1.1e-5
