"""Answers built once and shared (`cached.Cached`): single flight, versions, failed builds."""

from __future__ import annotations

import asyncio
import threading

import pytest

from pitstop.serving.cached import Cached


class Builds:
    """A build that counts its runs and can be held until the test lets it finish."""

    def __init__(self) -> None:
        self.runs = 0
        self.release = threading.Event()
        self.release.set()
        self.fail = False

    def __call__(self, key: str) -> str:
        self.runs += 1
        self.release.wait(10)
        if self.fail:
            raise RuntimeError("store unreachable")
        return f"{key}#{self.runs}"


def test_readers_during_a_build_share_it_and_later_ones_reuse_it() -> None:
    builds = Builds()
    builds.release.clear()
    cache: Cached[str, str] = Cached(builds, ttl=3600.0)

    async def main() -> list[str]:
        readers = [asyncio.create_task(cache.get("eta")) for _ in range(8)]
        await asyncio.sleep(0.05)  # all eight wait on the one build
        builds.release.set()
        return [*await asyncio.gather(*readers), await cache.get("eta")]

    assert asyncio.run(main()) == ["eta#1"] * 9
    assert builds.runs == 1


def test_a_new_version_builds_at_once_and_keys_are_apart() -> None:
    builds = Builds()
    cache: Cached[str, str] = Cached(builds, ttl=3600.0)

    async def main() -> list[str]:
        return [
            await cache.get("eta", 1),
            await cache.get("eta", 1),
            await cache.get("eta", 2),
            await cache.get("churn", 2),
        ]

    assert asyncio.run(main()) == ["eta#1", "eta#1", "eta#2", "churn#3"]


def test_a_failed_build_is_not_kept() -> None:
    builds = Builds()
    builds.fail = True
    cache: Cached[str, str] = Cached(builds, ttl=3600.0)

    async def main() -> str:
        with pytest.raises(RuntimeError, match="unreachable"):
            await cache.get("eta")
        builds.fail = False
        return await cache.get("eta")

    assert asyncio.run(main()) == "eta#2"


def test_a_value_is_kept_while_young_and_rebuilt_when_old() -> None:
    builds = Builds()
    cache: Cached[str, str] = Cached(builds, ttl=0.0, keep_per_build=0.0)

    async def main() -> list[str]:
        return [await cache.get("eta"), await cache.get("eta")]

    assert asyncio.run(main()) == ["eta#1", "eta#2"]
