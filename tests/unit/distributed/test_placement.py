"""What each role asks of the cluster's custom resources, and the refusal that names the role
and the resource when the cluster lacks them (computed by hand from the config)."""

from rlsys.config import Config
from rlsys.distributed.cluster import placement_problems, role_resources
from rlsys.distributed.roles import describe_nodes


def _cfg(**sections) -> Config:
    base = {"rollout": {"num_workers": 3, "prompts_per_iteration": 2, "group_size": 4},
            "learner": {"num_ranks": 2, "mini_batch_size": 8, "micro_batch_size": 4}}
    for k, v in sections.items():
        base[k] = {**base.get(k, {}), **v}
    return Config.model_validate(base)


def test_role_resources_are_per_actor_times_actors():
    cfg = _cfg(rollout={"resources": {"gen": 1}}, learner={"resources": {"train": 0.5, "gen": 1}},
               teacher={"path": "tiny-random", "num_workers": 2, "resources": {"teach": 2}})
    assert role_resources(cfg) == {"rollout": {"gen": 3.0}, "learner": {"train": 1.0, "gen": 2.0},
                                   "teacher": {"teach": 4.0}}
    assert role_resources(_cfg()) == {}  # nothing pinned: nothing asked


def test_critic_takes_its_own_resources_and_placement():
    cfg = _cfg(algorithm={"type": "ppo"}, critic={"num_ranks": 1, "resources": {"value": 1}, "placement": "SPREAD"})
    assert role_resources(cfg)["critic"] == {"value": 1.0}
    assert cfg.critic_learner().resources == {"value": 1.0} and cfg.critic_learner().placement == "SPREAD"


def test_missing_or_short_resources_name_the_roles_that_ask():
    demand = {"rollout": {"gen": 3.0}, "learner": {"gen": 2.0, "train": 1.0}}
    assert placement_problems(demand, {"gen": 5.0, "train": 1.0, "CPU": 2.0}) == []
    problems = placement_problems(demand, {"gen": 4.0, "CPU": 2.0})
    assert problems == ["resource 'gen': the run asks for 5 (rollout 3, learner 2) and the cluster offers 4",
                        "resource 'train': the run asks for 1 (learner 1) and the cluster offers 0"]


def test_nodes_are_described_by_short_id_and_count():
    a, b = "a" * 56, "b" * 56
    assert describe_nodes([a, a, b]) == "node aaaaaaaa x2, node bbbbbbbb"
