"""Multi-turn rollouts of a batch of prompts: a group of episodes per prompt, their model turns
on the rollout pool and their environment turns on the environment pool, token in, token out
(rlsys.envs.turn_loop). Episodes whose environment actor was lost are re-run once from their
start; an environment that cannot even reset an episode stops the run with its error."""

from __future__ import annotations

from rlsys.config import Config
from rlsys.envs.base import EnvironmentLost
from rlsys.envs.episode import Episode, EpisodeLimits
from rlsys.envs.tokens import TurnTokens
from rlsys.envs.turn_loop import ModelTurn, run_episodes
from rlsys.errors import RunError
from rlsys.distributed.env_pool import EnvPool
from rlsys.distributed.rollout_pool import RolloutPool
from rlsys.records import PromptItem, Trajectory


class EpisodeRunner:
    def __init__(self, cfg: Config, rollout: RolloutPool, envs: EnvPool, turn_tokens: TurnTokens,
                 system_prompt: str) -> None:
        self.cfg, self.rollout, self.envs, self.tokens = cfg, rollout, envs, turn_tokens
        self.system_prompt = system_prompt  # the data template's answer instruction
        self.limits = EpisodeLimits(cfg.env.max_turns, cfg.env.max_tokens)
        self.stop = envs.stop_strings()
        self.restarted = 0  # episodes of the last batch re-run because their environment was lost

    def run(self, items: list[PromptItem], temperatures: list[float], seeds: list[int], what: str,
            timeout_s: float | None) -> list[Trajectory]:
        cfg, group = self.cfg, len(temperatures)
        self.restarted = 0
        specs = [(p, k) for p in range(len(items)) for k in range(group)]
        keys: list[str] = []  # every episode started, to close what a budget ended
        episodes = self._start([(p, k, f"{p}/{k}/{seeds[p]}") for p, k in specs], items, temperatures, seeds, keys)

        def generate(eps: list[Episode]) -> list[ModelTurn]:
            turns = self.rollout.continue_turns(
                [e.context_ids() for e in eps], [min(cfg.rollout.max_new_tokens, e.tokens_left()) for e in eps],
                [e.temperature for e in eps], [e.turn_seed() for e in eps], self.stop, cfg.rollout.top_p,
                cfg.rollout.top_k, [e.prompt_index for e in eps], what, timeout_s)
            return [ModelTurn(t["ids"], t["logprobs"], t["text"], t["version"]) for t in turns]

        def step(eps: list[Episode], texts: list[str]) -> list:
            return self.envs.step([e.key for e in eps], texts)

        def restart(e: Episode) -> Episode:
            self.restarted += 1
            p, k = (int(x) for x in e.key.split("/")[:2])
            return self._start([(p, k, e.key + "/again")], items, temperatures, seeds, keys)[0]

        trajectories = run_episodes(episodes, generate, step, self.tokens, restart)
        self.envs.forget(keys)
        return trajectories

    def _start(self, specs: list[tuple[int, int, str]], items, temperatures, seeds, started: list[str]
               ) -> list[Episode]:
        """Episodes (prompt p, sample k, key) reset on the environment pool."""
        keys = [key for _, _, key in specs]
        started += keys
        tasks = [{"question": items[p].question, "answer": items[p].answer, "system": self.system_prompt,
                  **items[p].metadata} for p, _, _ in specs]
        first = self.envs.reset(keys, tasks)
        lost = [i for i, m in enumerate(first) if isinstance(m, EnvironmentLost)]
        if lost:  # the actor died or overran: Ray restarts it; one more try there
            again = self.envs.reset([keys[i] for i in lost], [tasks[i] for i in lost])
            for i, m in zip(lost, again):
                first[i] = m
        if bad := [m for m in first if isinstance(m, Exception)]:
            raise RunError(f"the environment ({self.cfg.env.type}) could not start an episode: {bad[0]}")
        return [Episode(p, self.tokens.prompt_ids(messages), temperatures[k], self.limits, key=key,
                        seed=seeds[p] + k) for (p, k, _), key, messages in zip(specs, keys, first)]
