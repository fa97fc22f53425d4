"""The run's own rollout autoscaler in whole local runs (`rollout.autoscale`): a learner-bound
run scales down from 2 workers to 1 with the measured reason, samples every prompt once,
and resumed from its checkpoint starts again with 1; a scale-up no node has room for (each
rollout worker asks for a whole CPU, the local Ray has 2 and the run uses 1.6) is abandoned
within its bound, logged, and the run goes on. The scale-up on a several-node cluster and the
drained node are tests/cluster/test_autoscale.py."""

import json
import subprocess
import sys

import pytest

from ..conftest import REPO

pytestmark = pytest.mark.slow


def _train(run_dir, *overrides, timeout=600):
    out = subprocess.run([sys.executable, "-m", "rlsys", "train", "configs/tiny/smoke.yaml", f"run.dir={run_dir}",
                          "tracking.console=false", *overrides], cwd=REPO, capture_output=True, text=True,
                         timeout=timeout)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    return out.stdout + out.stderr


def _rows(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]


def test_a_learner_bound_run_scales_down_and_resumes_at_its_size(tmp_path):
    run_dir = tmp_path / "run"
    # 24-token completions against 8 epochs of training: generation is a few percent of an
    # iteration, so one worker fewer is predicted to cost under down_cost (20%)
    args = ["rollout.num_workers=2", "ray.num_cpus=4", "learner.epochs=8", "run.checkpoint_every=5",
            "rollout.autoscale={min_workers: 1, max_workers: 2, up_gain: 0.5, down_cost: 0.2, window: 2, cooldown: 1}"]
    said = _train(run_dir, "run.iterations=5", *args)
    rows = _rows(run_dir)
    events = json.loads((run_dir / "summary.json").read_text())["scale_events"]
    # judged after iterations 1-2 (the window), applied before iteration 3
    assert [(e["iteration"], e["from"], e["to"]) for e in events] == [(2, 2, 1)], events
    assert "waits on the learner" in events[0]["reason"] and not events[0].get("abandoned")
    assert "autoscale after iteration 2: scaled rollout workers 2 -> 1" in said
    # the prediction is the measured iteration plus generation's share of the worker removed
    gen = sum(r["time/generation"] for r in rows[:2]) / 2
    assert events[0]["predicted_s"] == pytest.approx(events[0]["measured_s"] + gen, rel=1e-6)
    assert [r["rollout/workers"] for r in rows] == [2.0, 2.0, 1.0, 1.0, 1.0]
    assert [r.get("autoscale/change", 0.0) for r in rows] == [0.0, 0.0, -1.0, 0.0, 0.0]
    assert all(r["rollout/prompts"] == 4 and r["rollout/samples"] == 16 for r in rows)
    assert [r["sync/version"] for r in rows] == [1.0, 2.0, 3.0, 4.0, 5.0]  # the sync group followed

    # The same command with 2 more iterations resumes from iteration 5 with the 1 worker it had
    # (not the config's 2), and keeps the event of the first segment.
    said = _train(run_dir, "run.iterations=7", *args)
    assert "resumed from" in said
    rows = _rows(run_dir)
    assert [r["iteration"] for r in rows] == list(range(1, 8))
    assert [r["rollout/workers"] for r in rows[5:]] == [1.0, 1.0]
    assert [(e["iteration"], e["to"]) for e in json.loads((run_dir / "summary.json").read_text())["scale_events"]] \
        == [(2, 1)]


def test_a_scale_up_no_node_has_room_for_is_abandoned_within_its_bound(tmp_path):
    run_dir = tmp_path / "run"
    said = _train(run_dir, "run.iterations=6", "rollout.num_cpus=1", "ray.num_cpus=2",
                  "rollout.autoscale={max_workers: 2, up_gain: 0.01, down_cost: 0.0, window: 1, cooldown: 1, "
                  "resource_timeout_s: 3}")
    rows = _rows(run_dir)
    events = json.loads((run_dir / "summary.json").read_text())["scale_events"]
    # tried after iteration 1 (a window of 1), then after each cool-down iteration: 1, 3, 5
    assert [(e["iteration"], e["from"], e["to"], e["abandoned"]) for e in events] == \
        [(1, 1, 2, True), (3, 1, 2, True), (5, 1, 2, True)], events
    assert all(3.0 <= e["waited_s"] < 6.0 for e in events), events
    assert "no node had room for another rollout worker" in events[0]["reason"]
    assert said.count("abandoned rollout workers 1 -> 2") == 3
    assert [r["iteration"] for r in rows] == list(range(1, 7))
    assert all(r["rollout/workers"] == 1.0 and r["rollout/prompts"] == 4 for r in rows)
    assert [r.get("autoscale/abandoned", 0.0) for r in rows] == [0.0, 1.0, 0.0, 1.0, 0.0, 1.0]
