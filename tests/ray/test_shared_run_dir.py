"""The run folder must be one the learner ranks see (they write the checkpoints the driver
reads). On one machine every path is shared, so the blind rank here is a real actor whose
working directory differs from the driver's, given a relative `run.dir`: the same refusal a
rank on another host without the shared mount gets."""

import os

import pytest

from rlsys.distributed.cluster import check_shared_run_dir
from rlsys.distributed.groups import ActorGroup
from rlsys.errors import Unplaceable

pytestmark = pytest.mark.ray


class Elsewhere:
    def __init__(self, cwd: str) -> None:
        os.chdir(cwd)


def test_a_rank_that_cannot_see_the_run_folder_is_refused_by_name(local_ray, tmp_path, monkeypatch):
    driver_cwd, other = tmp_path / "driver", tmp_path / "other"
    driver_cwd.mkdir()
    other.mkdir()
    monkeypatch.chdir(driver_cwd)
    actors = [local_ray.remote(num_cpus=0)(Elsewhere).remote(str(c)) for c in (driver_cwd, other)]
    try:
        seeing = ActorGroup(actors[:1], ["learner-0"])
        check_shared_run_dir(driver_cwd / "run", {"learner": seeing, "critic": None}, 60)  # absolute: seen
        both = ActorGroup(actors, ["learner-0", "learner-1"])
        with pytest.raises(Unplaceable, match=r"run.dir run is not visible to learner-1 \(node [0-9a-f]{8}\): "
                                              r".*storage every node mounts"):
            check_shared_run_dir(type(driver_cwd)("run"), {"learner": both}, 60)
    finally:
        for a in actors:
            local_ray.kill(a)
    assert sorted(p.name for p in (driver_cwd / "run").iterdir()) == []  # the probe is gone
