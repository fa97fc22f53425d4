import pytest

from rlsys.config import ConfigError, load_config

from ..conftest import REPO


def test_shipped_configs_validate():
    for path in sorted((REPO / "configs").glob("*.yaml")):
        cfg = load_config(path)
        assert cfg.batch_size % cfg.learner.mini_batch_size == 0, path


def test_misspelt_key_names_key_and_file(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("learner:\n  lrr: 0.1\n")
    with pytest.raises(ConfigError) as err:
        load_config(f)
    assert "learner.lrr" in str(err.value) and str(f) in str(err.value) and "unknown key" in str(err.value)


def test_overrides_are_typed_and_applied(tmp_path):
    cfg = load_config(REPO / "configs" / "smoke.yaml", ["learner.lr=0.5", "rollout.temperature_range=[0.5, 1.5]", "run.dir=x"])
    assert cfg.learner.lr == 0.5 and cfg.rollout.temperature_range == (0.5, 1.5) and cfg.run.dir == "x"
    with pytest.raises(ConfigError, match="rollout.nope"):
        load_config(None, ["rollout.nope=1"])
    with pytest.raises(ConfigError, match="not of the form"):
        load_config(None, ["rollout.group_size"])


def test_batch_shape_errors_say_what_to_change():
    with pytest.raises(ConfigError, match="multiple of learner.mini_batch_size"):
        load_config(None, ["rollout.prompts_per_iteration=3", "rollout.group_size=3", "learner.mini_batch_size=8"])
    with pytest.raises(ConfigError, match="micro_batch_size"):
        load_config(None, ["learner.mini_batch_size=8", "learner.micro_batch_size=3"])


def test_missing_file_and_path_requirements(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="data.path is required"):
        load_config(None, ["data.source=gsm8k_jsonl"])
