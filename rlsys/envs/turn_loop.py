"""The turn loop of a batch of episodes: every running episode takes a model turn, then an
environment step, until none runs. Generation and stepping are passed in (a rollout group and
an environment pool in a run, plain functions in a test), so the loop holds only the order."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from rlsys.envs.base import EnvironmentLost, StepResult
from rlsys.envs.episode import Episode
from rlsys.envs.tokens import TurnTokens
from rlsys.records import Trajectory


@dataclass
class ModelTurn:
    """What the engine sampled for one episode's turn."""

    ids: list[int]
    logprobs: list[float]
    text: str
    version: int


Generate = Callable[[list[Episode]], list[ModelTurn]]
"""Continue each episode from `context_ids()` for at most `tokens_left()` (and the turn's own
limit) ids, stopping at the environment's stop strings."""
Step = Callable[[list[Episode], list[str]], list["StepResult | Exception"]]
"""Each episode's environment's answer to its last turn's text, or the error it ended in."""


def run_episodes(episodes: list[Episode], generate: Generate, step: Step, turn_tokens: TurnTokens,
                 restart: Callable[[Episode], Episode] | None = None) -> list[Trajectory]:
    """Every episode to its end. `restart(episode)` gives a fresh start of an episode whose
    environment was lost (`EnvironmentLost`); each episode is restarted at most once, a second
    loss fails it."""
    episodes = list(episodes)
    while running := [e for e in episodes if e.running]:
        # model turn: every running episode continues from its own ids
        for episode, turn in zip(running, generate(running)):
            episode.add_model_turn(turn.ids, turn.logprobs, turn.text, turn.version)
        stepping = [e for e in running if e.running]
        # environment turn: each answers its episode's last text; an error ends that episode only
        for episode, result in zip(stepping, step(stepping, [e.texts[-1] for e in stepping])):
            if isinstance(result, EnvironmentLost) and restart is not None and not episode.restarted:
                fresh = restart(episode)
                fresh.restarted = True
                episodes[next(i for i, e in enumerate(episodes) if e is episode)] = fresh
            elif isinstance(result, Exception):
                episode.fail(f"{type(result).__name__}: {result}")
            else:
                episode.add_environment_turn(result, turn_tokens)
    return [e.trajectory() for e in episodes]
