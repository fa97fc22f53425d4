"""A resumable, seeded sampler that walks shuffled epochs over the training tasks."""

from __future__ import annotations

import hashlib
import random


def request_seed(run_seed: int, iteration: int, data_index: int) -> int:
    """The sampling seed of a prompt's group in an iteration (sample k draws with seed + k):
    a function of the run seed, the iteration and the prompt only, so a resumed run, a
    replacement worker or another pool size draws the same completions."""
    digest = hashlib.sha256(f"{run_seed}/{iteration}/{data_index}".encode()).digest()
    return int.from_bytes(digest[:6], "little")


class PromptSampler:
    def __init__(self, size: int, seed: int) -> None:
        self.size, self.seed = size, seed
        self.epoch, self.position = 0, 0
        self._order = self._shuffle(0)

    def _shuffle(self, epoch: int) -> list[int]:
        order = list(range(self.size))
        random.Random(self.seed * 7919 + epoch).shuffle(order)
        return order

    def next(self, n: int) -> list[int]:
        out = []
        while len(out) < n:
            if self.position == self.size:
                self.epoch += 1
                self.position = 0
                self._order = self._shuffle(self.epoch)
            take = min(n - len(out), self.size - self.position)
            out.extend(self._order[self.position : self.position + take])
            self.position += take
        return out

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position, "seed": self.seed, "size": self.size}

    def load_state_dict(self, state: dict) -> None:
        self.seed, self.size = state["seed"], state["size"]
        self.epoch, self.position = state["epoch"], state["position"]
        self._order = self._shuffle(self.epoch)

def group_temperatures(group_size: int, temperature: float, temperature_range: tuple[float, float] | None) -> list[float]:
    """One temperature per sample of a group: constant, or spread linearly over a range."""
    if temperature_range is None or group_size == 1:
        return [temperature] * group_size
    low, high = temperature_range
    step = (high - low) / (group_size - 1)
    return [low + i * step for i in range(group_size)]
