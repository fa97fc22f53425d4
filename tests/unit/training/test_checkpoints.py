"""Run checkpoints on disk: which folders are whole, which are kept, and which config
changes a resume refuses (pure file logic, no actors)."""

import json

import pytest

from rlsys.training.checkpoint_store import CheckpointStore, config_changes, resume_point, set_aside_newer, whole_checkpoints
from rlsys.config import Config, dump_config
from rlsys.errors import RunError
from rlsys.loops.checkpointing import truncate_log


def _state(it: int, **extra) -> dict:
    return {"iteration": it, "version": it, "sampler": {}, "digests": {}, "eval": {}, **extra}


def _write(store: CheckpointStore, it: int, accuracy: float | None = None):
    tmp = store.begin(it)
    (tmp / "learner").mkdir()
    (tmp / "learner" / "shard.pt").write_bytes(bytes(range(it)))
    return store.commit(tmp, _state(it, eval={} if accuracy is None else {"accuracy": accuracy}), "x: 1\n")


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
    store.commit(tmp, _state(3), dump_config(cfg))
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


def test_run_logs_split_on_newline_only_and_drop_a_torn_last_line(tmp_path, capsys):
    """Sampled text may hold U+2028, U+0085, U+001C or a lone CR: all are line ends to
    str.splitlines(), none is one to JSONL. A torn last line (a writer killed mid-row) goes."""
    path = tmp_path / "samples.jsonl"
    odd = "a\u2028b\u0085c\x1cd\re\u2029f\x0bg"
    rows = [{"iteration": 1, "completion": odd}, {"iteration": 2, "completion": "plain"},
            {"iteration": 4, "completion": odd}]
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows) + '{"iteration": 5, "comp'
    path.write_text(text, encoding="utf-8")
    assert len(text.splitlines()) > 4  # what broke the resume before
    truncate_log(path, 3)
    kept = path.read_text(encoding="utf-8")
    assert kept == "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows[:2])  # each line as written
    assert "dropped its last line" in capsys.readouterr().err
    from rlsys.observability.jsonl_logs import read_log_rows
    from rlsys.errors import LogFileError

    assert [r["completion"] for r in read_log_rows(path)] == [odd, "plain"]
    path.write_text('{"iteration": 1}\n{"iteration": 2, \n{"iteration": 3}\n')
    with pytest.raises(LogFileError, match=r"samples.jsonl:2: not a JSON row"):
        truncate_log(path, 3)


def test_a_damaged_newest_checkpoint_is_passed_over_with_a_note(tmp_path, capsys):
    cfg = Config.model_validate({"run": {"dir": str(tmp_path), "checkpoint_every": 1, "keep_checkpoints": 5}})
    store = CheckpointStore(tmp_path, keep=5, best_by=None, best_mode="max")
    for it in (1, 2, 3):
        tmp = store.begin(it)
        (tmp / "learner").mkdir()
        (tmp / "learner" / "optim_states.pt").write_bytes(b"x" * (10 * it))
        store.commit(tmp, _state(it), dump_config(cfg))
    newest, middle = tmp_path / "checkpoints" / "iter-000003", tmp_path / "checkpoints" / "iter-000002"
    assert json.loads((newest / "state.json").read_text())["files"] == {"config.yaml": len(dump_config(cfg)),
                                                                        "learner/optim_states.pt": 30}
    (newest / "state.json").write_text("")  # a crash before the data reached the disk
    assert resume_point(cfg) == middle
    assert "iter-000003 is damaged (its state.json does not read" in capsys.readouterr().out
    (middle / "learner" / "optim_states.pt").unlink()  # a lost shard
    assert resume_point(cfg).name == "iter-000001"
    out = capsys.readouterr().out
    assert "iter-000002 is damaged (learner/optim_states.pt is missing)" in out and "resuming from iter-000001" in out
    (tmp_path / "checkpoints" / "iter-000001" / "learner" / "optim_states.pt").write_bytes(b"x" * 3)  # cut short
    assert resume_point(cfg) is None
    assert "has 3 bytes where 10 were written" in capsys.readouterr().out
    with pytest.raises(RunError, match="iter-000003 is damaged"):
        resume_point(cfg.model_copy(update={"run": cfg.run.model_copy(update={"resume": str(newest)})}))


def test_resuming_an_older_checkpoint_sets_the_newer_ones_aside_and_prunes_by_write_order(tmp_path):
    store = CheckpointStore(tmp_path, keep=1, best_by=None, best_mode="max")
    keep2 = CheckpointStore(tmp_path, keep=2, best_by=None, best_mode="max")
    for it in (2, 4, 6):
        _write(keep2, it)
    names = lambda: [p.name for p in whole_checkpoints(tmp_path)]  # noqa: E731
    assert names() == ["iter-000004", "iter-000006"]
    point = tmp_path / "checkpoints" / "iter-000004"
    moved = set_aside_newer(tmp_path, point)
    assert [p.name for p in moved] == ["iter-000006"] and moved[0].is_dir()
    assert names() == ["iter-000004"]
    _write(store, 5)  # the new timeline's next checkpoint, keep=1: the one just written stays
    assert names() == ["iter-000005"]
    # Write order, not iteration, says which is newest: iteration 3 written after 5.
    _write(keep2, 3)
    assert names() == ["iter-000005", "iter-000003"]
    cfg = Config.model_validate({"run": {"dir": str(tmp_path), "checkpoint_every": 1}})
    (tmp_path / "checkpoints" / "iter-000003" / "config.yaml").write_text(dump_config(cfg))
    (tmp_path / "checkpoints" / "iter-000003" / "state.json").write_text(json.dumps(
        {**json.loads((tmp_path / "checkpoints" / "iter-000003" / "state.json").read_text()),
         "files": {"config.yaml": len(dump_config(cfg))}}))
    assert resume_point(cfg).name == "iter-000003"


def test_the_learning_rate_schedule_keeps_its_saved_length_on_resume():
    """Cosine over 6 optimiser steps, no warmup, floor 0.1: by hand, step s has
    0.1 + 0.9 * (1 + cos(pi * s / 6)) / 2 of the peak, and stays at 0.1 from step 6 on."""
    import math

    from rlsys.run import schedule_steps
    from rlsys.training.engine import cosine_with_warmup

    cfg = Config.model_validate({"run": {"iterations": 6}, "rollout": {"prompts_per_iteration": 2, "group_size": 4},
                                 "learner": {"mini_batch_size": 8, "micro_batch_size": 4, "min_lr_ratio": 0.1,
                                             "warmup_steps": 0}})
    assert schedule_steps(cfg, 0, False) == {"learner": 6}
    longer = cfg.model_copy(update={"run": cfg.run.model_copy(update={"iterations": 9})})
    assert schedule_steps(longer, 0, False) == {"learner": 9}
    by_hand = [0.1 + 0.9 * (1 + math.cos(math.pi * s / 6)) / 2 for s in range(6)] + [0.1] * 3
    assert [cosine_with_warmup(s, 6, 0, 0.1) for s in range(9)] == pytest.approx(by_hand, abs=1e-12)
    stretched = longer.model_copy(update={"run": longer.run.model_copy(update={"schedule_iterations": 12})})
    assert schedule_steps(stretched, 0, False) == {"learner": 12}
