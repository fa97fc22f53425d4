"""Run checkpoints on disk: which folders are whole, which are kept, and which config
changes a resume refuses (pure file logic, no actors)."""

import json

import pytest

from rlsys.checkpoints import CheckpointStore, config_changes, resume_point, whole_checkpoints
from rlsys.config import Config, dump_config
from rlsys.distributed.calls import RunError
from rlsys.loops.checkpointing import truncate_log


def _write(store: CheckpointStore, it: int, accuracy: float | None = None):
    tmp = store.begin(it)
    (tmp / "learner").mkdir()
    return store.commit(tmp, {"iteration": it, "eval": {} if accuracy is None else {"accuracy": accuracy}}, "x: 1\n")


def test_partial_and_stateless_folders_are_never_whole(tmp_path):
    store = CheckpointStore(tmp_path, keep=5, best_by=None, best_mode="max")
    _write(store, 2)
    store.begin(4)  # a write a crash cut short
    (tmp_path / "checkpoints" / "iter-000006").mkdir()  # renamed by hand, no state.json
    assert [p.name for p in whole_checkpoints(tmp_path)] == ["iter-000002"]
    CheckpointStore(tmp_path, keep=5, best_by=None, best_mode="max")  # a new run clears the partial one
    assert not (tmp_path / "checkpoints" / "iter-000004.partial").exists()


def test_keeps_the_newest_k_and_the_best(tmp_path):
    store = CheckpointStore(tmp_path, keep=2, best_by="eval/accuracy", best_mode="max")
    for it, acc in ((1, 0.2), (2, 0.9), (3, 0.1), (4, 0.3), (5, 0.5)):
        _write(store, it, acc)
    assert [p.name for p in whole_checkpoints(tmp_path)] == ["iter-000002", "iter-000004", "iter-000005"]
    low = CheckpointStore(tmp_path, keep=1, best_by="eval/accuracy", best_mode="min")
    assert low.best().name == "iter-000004"  # the lowest of those left: 0.3


def test_config_changes_sorted_into_refused_and_noted():
    base = Config().model_dump(mode="json")
    now = Config.model_validate({"run": {"iterations": 50, "eval_every": 5}, "rollout": {"num_workers": 3}}).model_dump(mode="json")
    refused, noted = config_changes(base, now)
    assert refused == [] and noted == ["rollout.num_workers: 1 -> 3", "run.eval_every: 0 -> 5", "run.iterations: 10 -> 50"]
    now = Config.model_validate({"run": {"seed": 1}, "rollout": {"group_size": 4}, "learner": {"lr": 1e-4}}).model_dump(mode="json")
    refused, _ = config_changes(base, now)
    assert refused == ["learner.lr: 1e-05 -> 0.0001 (would change the training the checkpoint continues)",
                       "rollout.group_size: 8 -> 4 (would change the batch shape the saved optimiser state was built for)",
                       "run.seed: 0 -> 1 (would change which prompts come next)"]


def test_resume_point_refuses_a_changed_data_order(tmp_path):
    cfg = Config.model_validate({"run": {"dir": str(tmp_path), "checkpoint_every": 1}})
    store = CheckpointStore(tmp_path, keep=2, best_by=None, best_mode="max")
    tmp = store.begin(3)
    store.commit(tmp, {"iteration": 3, "eval": {}}, dump_config(cfg))
    assert resume_point(cfg).name == "iter-000003"
    assert resume_point(cfg.model_copy(update={"run": cfg.run.model_copy(update={"resume": "never"})})) is None
    changed = Config.model_validate({"run": {"dir": str(tmp_path), "checkpoint_every": 1},
                                     "data": {"train_size": 10}})
    with pytest.raises(RunError, match=r"data.train_size: 2000 -> 10 \(would change which prompts come next\)"):
        resume_point(changed)
    both = Config.model_validate({"run": {"dir": str(tmp_path), "checkpoint_every": 1, "overwrite": True}})
    with pytest.raises(RunError, match="set run.resume=never to start afresh"):
        resume_point(both)


def test_best_by_needs_checkpoints_that_hold_an_evaluation():
    with pytest.raises(ValueError, match="multiple of run.eval_every"):
        Config.model_validate({"run": {"best_by": "eval/accuracy", "checkpoint_every": 3, "eval_every": 2}})
    with pytest.raises(ValueError, match="use eval/<metric>"):
        Config.model_validate({"run": {"best_by": "accuracy"}})


def test_truncate_log_keeps_rows_up_to_the_checkpoint(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps({"iteration": i, "x": i}) + "\n" for i in (1, 2, 3, 4, 5)))
    truncate_log(path, 3)
    assert [json.loads(line)["iteration"] for line in path.read_text().splitlines()] == [1, 2, 3]
