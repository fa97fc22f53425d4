"""The metrics of an iteration's multi-turn episodes."""

from __future__ import annotations

from rlsys.records import Trajectory


def episode_metrics(trajectories: list[Trajectory], restarted: int = 0) -> dict[str, float]:
    """Turns per episode, tool calls and tool errors (totals), environment ids (mean per
    episode), truncated and failed episodes (shares), episodes re-run after a lost environment."""
    n = max(1, len(trajectories))
    return {
        "rollout/turns_mean": sum(len(t.turn_ends) for t in trajectories) / n,
        "rollout/tool_calls": float(sum(t.tool_calls for t in trajectories)),
        "rollout/tool_errors": float(sum(t.tool_errors for t in trajectories)),
        "rollout/env_tokens": sum(t.env_tokens for t in trajectories) / n,
        "rollout/truncated": sum(t.truncated for t in trajectories) / n,
        "rollout/env_failures": float(sum(t.status == "failed" for t in trajectories)),
        "rollout/env_restarts": float(restarted),
    }
