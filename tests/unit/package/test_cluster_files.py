"""The files in `cluster/` describe one multi-node layout (a node group per role, each offering
the custom resource the config's placement keys ask for) and are valid for their tools:
the RayJob against KubeRay's RayJob CRD schema (unknown fields refused, as
`kubectl --validate=strict` would), the cluster-launcher file against Ray's own schema, and
the SLURM script's Ray start lines against `ray start`'s options. Each check is also shown
to fail on a broken copy."""

import copy
import gzip
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from rlsys.config import load_config
from rlsys.distributed.cluster import placement_problems, role_resources

from ...conftest import DATA, REPO

CLUSTER = REPO / "cluster"


def _strict(schema):
    """Refuse fields the schema does not name (Kubernetes prunes or, strict, rejects them)."""
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items()}
        if "properties" in out and "additionalProperties" not in out \
                and not out.get("x-kubernetes-preserve-unknown-fields"):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


RAYJOB_SCHEMA = _strict(json.loads(gzip.decompress((DATA / "kuberay" / "rayjob_v1_schema.json.gz").read_bytes())))


def _rayjob():
    return yaml.safe_load((CLUSTER / "rayjob.yaml").read_text())


def _entrypoint_config(entrypoint: str):
    args = shlex.split(entrypoint)
    assert args[:4] == ["python", "-m", "rlsys", "train"], args
    return load_config(REPO / args[4], args[5:])


def _offered_by_groups(job) -> dict[str, float]:
    offered: dict[str, float] = {}
    for group in job["spec"]["rayClusterSpec"]["workerGroupSpecs"]:
        custom = json.loads(json.loads(group["rayStartParams"].get("resources", '"{}"')))
        gpus = float(group["template"]["spec"]["containers"][0]["resources"]["limits"].get("nvidia.com/gpu", 0))
        for k, v in {**custom, "GPU": gpus}.items():
            offered[k] = offered.get(k, 0.0) + v * group["replicas"]
    return offered


def _gpu_demand(cfg) -> float:
    teacher = cfg.teacher.num_gpus * cfg.teacher.num_workers if cfg.teacher.path else 0.0
    return cfg.rollout.num_gpus * cfg.rollout.num_workers + cfg.learner.num_gpus * cfg.learner.num_ranks + teacher


def test_the_rayjob_is_valid_for_kuberay_and_offers_what_its_run_asks_for():
    job = _rayjob()
    jsonschema.validate(job, RAYJOB_SCHEMA)
    cfg = _entrypoint_config(job["spec"]["entrypoint"])
    demand = role_resources(cfg)
    assert set(demand) == {"rollout", "teacher", "learner"}  # every role pinned to its group
    offered = _offered_by_groups(job)
    assert placement_problems(demand, offered) == []
    assert _gpu_demand(cfg) <= offered["GPU"]
    assert cfg.run.dir.startswith("/shared/")  # the volume every pod mounts
    for spec in [job["spec"]["rayClusterSpec"]["headGroupSpec"], *job["spec"]["rayClusterSpec"]["workerGroupSpecs"]]:
        mounts = spec["template"]["spec"]["containers"][0]["volumeMounts"]
        assert {"name": "shared", "mountPath": "/shared"} in mounts
    grace = job["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > cfg.run.stop_grace_s


def test_the_rayjob_checks_can_fail():
    job = _rayjob()
    typo = copy.deepcopy(job)
    typo["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["replica"] = 2  # not a field
    with pytest.raises(jsonschema.ValidationError, match="replica"):
        jsonschema.validate(typo, RAYJOB_SCHEMA)
    wrong_type = copy.deepcopy(job)
    wrong_type["spec"]["shutdownAfterJobFinishes"] = "yes"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(wrong_type, RAYJOB_SCHEMA)
    no_teacher = copy.deepcopy(job)
    no_teacher["spec"]["rayClusterSpec"]["workerGroupSpecs"] = [
        g for g in job["spec"]["rayClusterSpec"]["workerGroupSpecs"] if g["groupName"] != "teacher"]
    problems = placement_problems(role_resources(_entrypoint_config(job["spec"]["entrypoint"])),
                                  _offered_by_groups(no_teacher))
    assert problems == ["resource 'teacher_node': the run asks for 2 (teacher 2) and the cluster offers 0"]


def _group(job, name):
    return next(g for g in job["spec"]["rayClusterSpec"]["workerGroupSpecs"] if g["groupName"] == name)


def _autoscale_problems(job) -> list[str]:
    """What keeps the autoscaled RayJob from giving its run the rollout workers it may ask for."""
    cfg = _entrypoint_config(job["spec"]["entrypoint"])
    spec, scale, group = job["spec"]["rayClusterSpec"], cfg.rollout.autoscale, _group(job, "rollout")
    per_pod = json.loads(json.loads(group["rayStartParams"]["resources"]))["rollout_node"]
    per_worker = cfg.rollout.resources["rollout_node"]
    problems = []
    if not spec.get("enableInTreeAutoscaling"):
        problems.append("Ray's autoscaler is off")
    if scale is None:
        problems.append("the run does not autoscale")
    else:
        if group["maxReplicas"] * per_pod < scale.max_workers * per_worker:
            problems.append(f"{group['maxReplicas']} rollout pods hold {group['maxReplicas'] * per_pod // per_worker:g}"
                            f" workers, the run may ask for {scale.max_workers}")
        if group["replicas"] * per_pod < cfg.rollout.num_workers * per_worker:
            problems.append("the first rollout pods do not hold the workers the run starts with")
    return problems


def test_the_autoscaled_rayjob_is_valid_and_its_rollout_group_can_grow_as_far_as_the_run_asks():
    job = yaml.safe_load((CLUSTER / "rayjob_autoscale.yaml").read_text())
    jsonschema.validate(job, RAYJOB_SCHEMA)
    cfg = _entrypoint_config(job["spec"]["entrypoint"])
    assert (cfg.rollout.num_workers, cfg.rollout.autoscale.min_workers, cfg.rollout.autoscale.max_workers) == (4, 4, 16)
    assert placement_problems(role_resources(cfg), _offered_by_groups(job)) == []
    assert _autoscale_problems(job) == []
    # the checks can fail: a group capped at 2 pods, the autoscaler off
    capped = copy.deepcopy(job)
    _group(capped, "rollout")["maxReplicas"] = 2
    capped["spec"]["rayClusterSpec"]["enableInTreeAutoscaling"] = False
    assert _autoscale_problems(capped) == ["Ray's autoscaler is off",
                                           "2 rollout pods hold 8 workers, the run may ask for 16"]


def test_the_cluster_launcher_file_is_valid_and_has_a_node_type_per_role():
    import ray

    schema = json.loads((Path(ray.__file__).parent / "autoscaler" / "ray-schema.json").read_text())
    launcher = yaml.safe_load((CLUSTER / "ray_cluster.yaml").read_text())
    jsonschema.validate(launcher, schema)
    cfg = load_config(REPO / "configs" / "cluster" / "distill_teacher_ll.yaml")
    types = launcher["available_node_types"]
    offered: dict[str, float] = {}
    for node in types.values():
        for k, v in node["resources"].items():
            offered[k] = offered.get(k, 0.0) + v * node.get("min_workers", 1)
    assert placement_problems(role_resources(cfg), offered) == []
    broken = copy.deepcopy(launcher)
    broken["available_node_types"]["rollout"]["min_worker"] = 1
    with pytest.raises(jsonschema.ValidationError, match="min_worker"):
        jsonschema.validate(broken, schema)


def _sbatch_functions() -> dict[str, list[str]]:
    """Each `ray_*` function of the SLURM script: its `ray start` arguments, as bash splits them."""
    text = (CLUSTER / "slurm_ray.sbatch").read_text()
    out = {}
    for name, body in re.findall(r"^(ray_\w+)\(\) \{[^\n]*\n(.*?)\n\}", text, flags=re.S | re.M):
        out[name] = shlex.split(body.replace("\\\n", " "))
    return out


def test_the_slurm_script_starts_ray_with_options_ray_knows_and_a_node_per_role():
    assert subprocess.run(["bash", "-n", str(CLUSTER / "slurm_ray.sbatch")]).returncode == 0
    functions = _sbatch_functions()
    assert set(functions) == {"ray_head", "ray_teacher", "ray_rollout"}
    ray_bin = str(Path(sys.executable).parent / "ray")
    known = set(re.findall(r"--[a-z][a-z0-9-]+", subprocess.run([ray_bin, "start", "--help"], capture_output=True,
                                                                text=True, timeout=120).stdout))
    offered: dict[str, float] = {}
    for name, args in functions.items():
        assert args[:2] == ["ray", "start"], (name, args)
        flags = {a.split("=", 1)[0] for a in args[2:] if a.startswith("--")}
        assert flags <= known, (name, flags - known)
        for a in args:
            if a.startswith("--resources="):
                for k, v in json.loads(a.split("=", 1)[1]).items():
                    offered[k] = offered.get(k, 0.0) + v
    cfg = load_config(REPO / "configs" / "cluster" / "distill_teacher_ll.yaml")
    assert placement_problems(role_resources(cfg), offered) == []
