"""A trajectory as the rest of a run sees it (a sample with a loss mask) and the episode
metrics of a batch, on hand-made trajectories."""

from rlsys.observability.episode_metrics import episode_metrics
from rlsys.records import Trajectory


def _traj(status, mask, turns, calls=0, errors=0):
    return Trajectory(0, [1, 2], list(range(len(mask))), mask, [-0.5 if m else 0.0 for m in mask],
                      turns, [0.0] * len(turns), [3 + k for k in range(len(turns))], status, 0.7,
                      tool_calls=calls, tool_errors=errors, turn_texts=["first"] * (len(turns) - 1) + ["final"])


def test_to_sample_keeps_the_ids_the_mask_and_the_oldest_version():
    s = _traj("done", [1, 1, 0, 0, 1], [1, 4]).to_sample()
    assert (s.completion_ids, s.loss_mask, s.text, s.finish_reason) == ([0, 1, 2, 3, 4], [1, 1, 0, 0, 1], "final", "stop")
    assert s.weight_version == 3 and s.temperature == 0.7
    assert _traj("max_turns", [1], [0]).to_sample().finish_reason == "length"


def test_episode_metrics_by_hand():
    batch = [_traj("done", [1, 1, 0, 0, 1], [1, 4], calls=1), _traj("max_tokens", [1, 0, 0, 0, 1, 1], [0, 5], 2, 1),
             _traj("failed", [1], [0]), _traj("done", [1, 1], [1])]
    m = episode_metrics(batch, restarted=1)
    assert m["rollout/turns_mean"] == (2 + 2 + 1 + 1) / 4
    assert m["rollout/tool_calls"] == 3 and m["rollout/tool_errors"] == 1
    assert m["rollout/env_tokens"] == (2 + 3 + 0 + 0) / 4
    assert m["rollout/truncated"] == 0.25 and m["rollout/env_failures"] == 1 and m["rollout/env_restarts"] == 1


def test_the_sample_log_row_shows_each_turn_with_its_reward_and_the_environments_answer():
    t = _traj("max_tokens", [1, 0, 1], [0, 2], calls=1)
    t.turn_rewards = [0.25, 1.0]
    t.turn_texts = ['<tool_call>{"name": "calculator"}</tool_call>', "The answer is 4."]
    t.observations = [[{"role": "tool", "content": "4"}, {"role": "user", "content": "go on"}]]  # none after the last
    assert t.log_row() == {"turns": [{"model": t.turn_texts[0], "reward": 0.25, "env": "4\ngo on"},
                                     {"model": "The answer is 4.", "reward": 1.0, "env": ""}],
                           "status": "max_tokens", "tool_calls": 1, "tool_errors": 0}
    t.status, t.error = "failed", "RuntimeError: broke"
    assert t.log_row()["error"] == "RuntimeError: broke"
