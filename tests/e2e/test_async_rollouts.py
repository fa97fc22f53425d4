"""Asynchronous rollouts end to end (real vLLM engine, real DeepSpeed learner, real Ray
actors, a tiny random model): with `rollout.max_staleness` k in {0, 2} the staleness the
loop logs never exceeds k and, for k > 0, batches really are generated ahead (a staleness of
at least 1 appears); with k = 0 the learner's log-probs agree with vLLM's sampling log-probs
(mismatch KL below 1e-3 in fp32); with k > 0 the truncated importance weights the loop
logs equal min(pi_old / pi_sampler, cap) recomputed by hand from the logged batch (the
learner's old log-probs and vLLM's sampling log-probs of every token). k = 1 runs in the
asynchronous resume and chaos tests (tests/e2e/test_resume_cli.py, test_chaos_cli.py), which
require a staleness of exactly 1 to appear; k = 2 is the bound that lets two batches run ahead."""

import json
import math
import subprocess
import sys

import pytest

from ..conftest import REPO

pytestmark = pytest.mark.slow

ITERATIONS = 5


def _run(tmp_path, k, extra=()):
    run_dir = tmp_path / f"k{k}"
    # one optimiser step per batch: the old policy is the training pass itself (unless `extra` says)
    out = subprocess.run([sys.executable, "-m", "rlsys", "train", "configs/tiny/smoke.yaml", f"run.dir={run_dir}",
                          f"run.iterations={ITERATIONS}", f"rollout.max_staleness={k}", "learner.mini_batch_size=16",
                          "learner.epochs=1", "tracking.console=false", "data.eval_size=4", *extra],
                         cwd=REPO, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    assert [r["iteration"] for r in rows] == list(range(1, ITERATIONS + 1))
    return rows


@pytest.mark.parametrize("k", [0, 2])
def test_staleness_stays_within_k(tmp_path, k):
    # k > 0: the old policy from a learner pass, logged with the batch, to recompute the weights
    extra = ["algorithm.old_policy=learner", "tracking.dump_batches=true"] if k else []
    rows = _run(tmp_path, k, extra)
    staleness = [r["rollout/staleness_max"] for r in rows]
    assert max(staleness) <= k
    assert [r["sync/version"] for r in rows] == [float(i) for i in range(1, ITERATIONS + 1)]
    if k == 0:
        assert staleness == [0.0] * ITERATIONS
        assert all(r["train/mismatch_kl"] < 1e-3 for r in rows), [r["train/mismatch_kl"] for r in rows]
        assert all("train/tis_weight" not in r for r in rows)
    else:
        # the second batch is drawn before the first update lands: generated ahead
        assert rows[1]["rollout/staleness_max"] >= 1
        assert rows[0]["rollout/staleness_max"] == 0
        for r in rows:
            batch = tmp_path / f"k{k}" / "batches" / f"iter-{r['iteration']:06d}.jsonl"
            items = [json.loads(line) for line in batch.read_text().splitlines()]
            ratios = [math.exp(o - s) for it in items for o, s in zip(it["old_logprobs"], it["sampling_logprobs"])]
            assert len(ratios) == r["train/tokens"] > 0
            assert r["train/tis_weight"] == pytest.approx(sum(min(x, 2.0) for x in ratios) / len(ratios), rel=1e-6)
            assert r["train/tis_clip_fraction"] == pytest.approx(sum(x > 2.0 for x in ratios) / len(ratios), abs=1e-9)
        # a stale batch really is off the learner's policy: its weights are not all 1
        assert max(abs(r["train/tis_weight"] - 1.0) for r in rows if r["rollout/staleness_max"] > 0) > 1e-4
