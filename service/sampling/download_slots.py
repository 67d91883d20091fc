"""Who may hold a sampler: the server's slots, and each key's and project's share.

Why shares: each sampler is a forked process holding torch and a model, so the server
runs a few at a time; one consumer that opened four downloads and never read them held
every slot of every project. Now a key holds at most ``per_key`` slots and a project at
most ``per_project``, and the route frees a slot whose reader has stalled.
"""

from __future__ import annotations

import asyncio
from collections import Counter

__all__ = ["DownloadSlots", "SlotsBusy"]


class SlotsBusy(Exception):
    """No slot came free in time; ``limit`` names the bound that held."""

    def __init__(self, limit: str) -> None:
        super().__init__(limit)
        self.limit = limit


class DownloadSlots:
    def __init__(self, total: int, *, per_key: int, per_project: int) -> None:
        self.total, self.per_key, self.per_project = total, per_key, per_project
        self.keys: Counter[str] = Counter()
        self.projects: Counter[str] = Counter()
        self.held = 0
        self._changed = asyncio.Condition()

    def _blocking(self, key: str, project: str) -> str | None:
        if self.keys[key] >= self.per_key:
            return f"this key already holds {self.per_key} downloads"
        if self.projects[project] >= self.per_project:
            return f"this project already holds {self.per_project} downloads"
        if self.held >= self.total:
            return f"all {self.total} samplers are busy"
        return None

    async def take(self, key: str, project: str, wait_seconds: float) -> None:
        """Wait up to ``wait_seconds`` for a slot within every bound; SlotsBusy if none."""
        async with self._changed:
            try:
                await asyncio.wait_for(
                    self._changed.wait_for(lambda: self._blocking(key, project) is None),
                    timeout=wait_seconds,
                )
            except TimeoutError:
                raise SlotsBusy(self._blocking(key, project) or "busy") from None
            self.keys[key] += 1
            self.projects[project] += 1
            self.held += 1

    async def give_back(self, key: str, project: str) -> None:
        async with self._changed:
            self.keys[key] -= 1
            self.projects[project] -= 1
            self.held -= 1
            for counter, name in ((self.keys, key), (self.projects, project)):
                if counter[name] <= 0:
                    del counter[name]  # bounded: only keys holding a slot are kept
            self._changed.notify_all()
