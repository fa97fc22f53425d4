"""The autoscaler's decision on phase times worked out by hand: scale up, down, hold, the
cool-down and the measuring window, a scale-up that did not pay undone, and the bounds."""

import pytest

from rlsys.config import load_config
from rlsys.config.rollout import AutoscaleConfig
from rlsys.distributed.autoscale_rule import IterationTimes, decide

POLICY = AutoscaleConfig(min_workers=1, max_workers=4, up_gain=0.10, down_cost=0.03, window=2, cooldown=1)


def rows(first, n, workers, asynchronous=False, **seconds):
    metrics = {f"time/{k}": v for k, v in seconds.items() if k != "tokens_per_s"}
    metrics["rollout/tokens_per_s"] = seconds.get("tokens_per_s", 0.0)
    return [IterationTimes.of(first + i, workers, metrics, asynchronous) for i in range(n)]


def test_a_generation_bound_synchronous_run_scales_up():
    # 1 worker: generation 6 + reward 1 (the learner waits all 7), train 3, sync 1: 11 s.
    # 2 workers: generation 3, so 11 - 3 = 8 s, 3/11 = 27% shorter >= 10%.
    d = decide(rows(1, 2, 1, generation=6, reward=1, train=3, sync=1, iteration=11), POLICY)
    assert d.to == 2 and d.predicted_s == pytest.approx(8.0)
    assert "27% shorter" in d.reason


def test_a_learner_bound_synchronous_run_scales_down():
    # 2 workers: generation 0.5, train 20, sync 0.5: 21 s. One fewer: generation 1.0, 21.5 s,
    # 0.5/21 = +2.4% <= 3%. One more would save 0.5 - 1/3 = 0.167 s (0.8%): not worth it.
    d = decide(rows(1, 2, 2, generation=0.5, train=20, sync=0.5, iteration=21), POLICY)
    assert d.to == 1 and d.predicted_s == pytest.approx(21.5)


def test_a_balanced_run_holds():
    # 2 workers: generation 2, reward 0.5, train 10, sync 1: 13.5 s. Up: 2 - 4/3 = 0.667 s,
    # 4.9% < 10%. Down: +2 s, 14.8% > 3%. Neither.
    d = decide(rows(1, 2, 2, generation=2, reward=0.5, train=10, sync=1, iteration=13.5), POLICY)
    assert d.to == 2 and d.reason.startswith("balanced")


def test_asynchronous_runs_judge_by_the_learners_wait():
    # 1 worker, generation 8 + reward 1 = 9 s against a learner side of 4 s: the learner waited
    # 5 s of a 10 s iteration. 2 workers: generation 4, wait max(0, 5 - 4) = 1, 6 s: 40% shorter.
    d = decide(rows(1, 2, 1, True, generation=8, reward=1, train=4, batch_wait=5, iteration=10), POLICY)
    assert d.to == 2 and d.predicted_s == pytest.approx(6.0)
    # 2 workers, generation 4 s hidden behind a 10 s learner side (no wait): one fewer makes
    # generation 8 s, still inside the 10 - 4 = 6 s of slack plus its own 4: no wait, no cost.
    d = decide(rows(1, 2, 2, True, generation=4, train=10, batch_wait=0, iteration=11), POLICY)
    assert d.to == 1 and d.predicted_s == pytest.approx(11.0)
    # ... but with generation 7 s against the 10 s learner (3 s of slack) one fewer makes it
    # 14 s: 4 s of wait, 15 s per iteration, +36%: hold.
    d = decide(rows(1, 2, 2, True, generation=7, train=10, batch_wait=0, iteration=11), POLICY)
    assert d.to == 2


def test_cool_down_then_a_window_at_the_new_size():
    change = {"iteration": 4, "from": 1, "to": 2}
    up_bound = dict(generation=6, reward=1, train=3, sync=1, iteration=11)
    history = rows(1, 4, 1, **up_bound) + rows(5, 1, 2, **up_bound)
    assert decide(history, POLICY, change).reason.startswith("cool-down")  # iteration 5: the change's first
    history += rows(6, 1, 2, **up_bound)
    d = decide(history, POLICY, change)  # iteration 6 only: 1 of the 2 iterations the window needs
    assert d.to == 2 and d.reason.startswith("measuring 2 worker(s): 1 of 2")
    history += rows(7, 1, 2, **up_bound)
    # iterations 6 and 7 at 2 workers: generation 6 of an 11 s iteration, 3 workers: 6 * 2/3 = 4,
    # 2 s (18%) shorter
    d = decide(history, POLICY, change)
    assert d.to == 3 and d.predicted_s == pytest.approx(9.0)


def test_a_scale_up_that_did_not_shorten_the_iteration_is_undone_and_not_tried_again():
    change = {"iteration": 2, "from": 1, "to": 2, "measured_s": 11.0}
    times = dict(generation=6, reward=1, train=3, sync=1)
    # at 2 workers the iterations took 10.6 s: 3.6% shorter, under half of up_gain (5%)
    history = rows(1, 2, 1, iteration=11, **times) + rows(3, 3, 2, iteration=10.6, **times)
    d = decide(history, POLICY, change)
    assert d.to == 1 and d.ceiling == 1
    assert "2 workers did not shorten the iteration enough (11.00 s -> 10.60 s, -4%; 5% shorter needed)" in d.reason
    # 8.5 s: 23% shorter, it paid; generation 6 of 8.5 s still asks for a third worker
    # (6 * 2/3 = 4: 2 s less, 24%)
    history = rows(1, 2, 1, iteration=11, **times) + rows(3, 3, 2, iteration=8.5, **times)
    d = decide(history, POLICY, change)
    assert d.to == 3 and d.predicted_s == pytest.approx(6.5)
    # with the ceiling learnt, an up-bound run holds at it
    d = decide(rows(10, 2, 1, iteration=11, **times), POLICY, None, ceiling=1)
    assert d.to == 1 and "at most 1" in d.reason


def test_iterations_that_changed_the_workers_are_not_judged():
    up_bound = dict(generation=6, reward=1, train=3, sync=1, iteration=11)
    history = rows(1, 1, 1, **up_bound)
    moved = IterationTimes.of(2, 1, {"time/generation": 30.0, "time/iteration": 40.0, "rollout/moved": 1.0}, False)
    # iteration 2 moved a worker off a draining node (its engine warmed up): only iteration 1
    # is settled, 1 of the 2 the window needs
    d = decide(history + [moved], POLICY)
    assert d.to == 1 and d.reason.startswith("measuring 1 worker(s): 1 of 2")
    assert decide(history + [moved] + rows(3, 1, 1, **up_bound), POLICY).to == 2


def test_the_bounds_win():
    times = dict(generation=6, reward=1, train=3, sync=1, iteration=11)
    assert decide(rows(1, 2, 4, **times), POLICY).to == 4  # up-bound, but at max_workers
    assert decide(rows(1, 1, 5, **times), POLICY).to == 4
    assert decide(rows(1, 1, 1, generation=0.1, train=20, iteration=20.1), AutoscaleConfig(min_workers=2, max_workers=4)).to == 2


def test_the_config_rejects_an_autoscale_that_cannot_work():
    with pytest.raises(Exception, match="min_workers \\(3\\) is above max_workers \\(2\\)"):
        load_config("configs/tiny/smoke.yaml", ["rollout.autoscale={min_workers: 3, max_workers: 2}"])
    with pytest.raises(Exception, match="down_cost \\(0.2\\) must be below up_gain \\(0.1\\)"):
        load_config("configs/tiny/smoke.yaml", ["rollout.autoscale={down_cost: 0.2}"])
    with pytest.raises(Exception, match="rollout.num_workers \\(5\\) must lie within"):
        load_config("configs/tiny/smoke.yaml", ["rollout.num_workers=5", "rollout.autoscale={max_workers: 4}"])
    with pytest.raises(Exception, match="DPO runs keep their rollout workers"):
        load_config("configs/tiny/online_dpo.yaml", ["rollout.autoscale={max_workers: 2}"])
    cfg = load_config("configs/tiny/smoke.yaml", ["rollout.autoscale={max_workers: 3}"])
    assert cfg.rollout.autoscale.max_workers == 3 and cfg.rollout.autoscale.min_workers == 1
