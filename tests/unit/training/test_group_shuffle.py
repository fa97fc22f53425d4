"""Mini-batches that shuffle whole groups: every item once per epoch, a group never split
when the mini-batch holds whole groups, and the order still shuffled between epochs."""

import random
from types import SimpleNamespace

from rlsys.config import LearnerConfig
from rlsys.training.engine import TrainingEngine


def _engine(mini, micro):
    eng = TrainingEngine.__new__(TrainingEngine)  # the batching needs no model or process group
    eng.cfg, eng.world_size = LearnerConfig(mini_batch_size=mini, micro_batch_size=micro), 1
    return eng


def test_group_shuffle_keeps_groups_whole():
    items = [SimpleNamespace(prompt=g, completion_ids=[0] * (i % 3 + 1)) for g in range(6) for i in range(4)]
    eng = _engine(8, 4)
    minis = [m for m, *_ in eng.mini_batches(items, [1] * len(items), random.Random(0), 2, "test",
                                               group_of=lambda it: it.prompt)]
    flat = [[i for micro in m for i in micro] for m in minis]
    assert len(flat) == 6  # 24 items / 8, two epochs
    for epoch in (flat[:3], flat[3:]):
        assert sorted(i for m in epoch for i in m) == list(range(24))
    for m in flat:
        assert len({items[i].prompt for i in m}) == 2  # two whole groups of four
    assert flat[:3] != flat[3:]
    plain = [[i for micro in m for i in micro] for m, *_ in eng.mini_batches(
        items, [1] * len(items), random.Random(0), 1, "test")]
    assert max(len({items[i].prompt for i in m}) for m in plain) > 2  # without it, groups scatter
