import pytest


@pytest.fixture(scope="package")
def local_ray():
    """One local Ray for the package's tests, on 127.0.0.1 (see tests/conftest.py)."""
    import ray

    from rlsys.config import RayConfig
    from rlsys.distributed.cluster import init_ray

    init_ray(RayConfig(num_cpus=4))
    assert ray.util.get_node_ip_address() == "127.0.0.1"
    yield ray
    ray.shutdown()


@pytest.fixture(autouse=True, scope="module")
def free_placement_groups(local_ray):
    """Killed learner/critic actors leave their placement groups reserved in the shared Ray;
    each module removes those it leaves, so the next module's actors can be placed."""
    from ray.util import placement_group_table, remove_placement_group
    from ray.util.placement_group import PlacementGroup

    before = set(placement_group_table())
    yield
    for pg_id, info in placement_group_table().items():
        if pg_id not in before and info.get("state") != "REMOVED":
            remove_placement_group(PlacementGroup(local_ray.PlacementGroupID(bytes.fromhex(pg_id))))


def engine_and_learner(local_ray, cfg, model_path: str):
    """One vLLM rollout worker and one learner rank of `cfg`, joined in a gloo sync group."""
    from rlsys.distributed.actors import start_learners, start_rollout_workers

    rollout = start_rollout_workers(cfg, model_path)[0]
    learner = start_learners(cfg, model_path, total_optimizer_steps=100)[0]
    local_ray.get(rollout.ping.remote())  # the engine is up before the group's join timeout starts
    host, port = local_ray.get(learner.sync_endpoint.remote())
    local_ray.get([learner.init_sync_group.remote("gloo", host, port, 2, 20.0),
                   rollout.init_sync_group.remote("gloo", host, port, 1, 2, 20.0)])
    return rollout, learner


def lora_engine_and_learner(local_ray, model_path: str, engine_weights: str):
    """A LoRA (r=8, alpha=16) learner on the tiny model and its engine (`engine_weights`:
    adapter or merged), joined for sync; returns (config, rollout, learner)."""
    from rlsys.config import Config

    cfg = Config.model_validate({
        "model": {"path": model_path, "dtype": "float32", "max_model_len": 256,
                  "lora": {"r": 8, "alpha": 16, "engine_weights": engine_weights}},
        "rollout": {"num_workers": 1, "kv_cache_gib": 0.25, "prompts_per_iteration": 2, "group_size": 4,
                    "num_cpus": 0.25},
        "learner": {"mini_batch_size": 4, "micro_batch_size": 4, "lr": 2e-2, "epochs": 1, "num_cpus": 0.25},
        "algorithm": {"kl_beta": 0.1},
        "sync": {"bucket_mb": 0.01, "timeout_s": 20},
    })
    return (cfg, *engine_and_learner(local_ray, cfg, model_path))
