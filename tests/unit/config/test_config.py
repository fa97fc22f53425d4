import pytest

from rlsys.config import load_config
from rlsys.errors import ConfigError

from ...conftest import REPO


def test_shipped_configs_validate():
    """Every training config of every group (evaluation suites: tests/unit/eval/test_eval_suite.py)."""
    paths = [p for group in ("demo", "tiny", "cluster") for p in sorted((REPO / "configs" / group).glob("*.yaml"))]
    assert len(paths) == 22
    for path in paths:
        cfg = load_config(path)
        assert cfg.batch_size % cfg.learner.mini_batch_size == 0, path


def test_misspelt_key_names_key_and_file(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("learner:\n  lrr: 0.1\n")
    with pytest.raises(ConfigError) as err:
        load_config(f)
    assert "learner.lrr" in str(err.value) and str(f) in str(err.value) and "unknown key" in str(err.value)


def test_overrides_are_typed_and_applied(tmp_path):
    cfg = load_config(REPO / "configs" / "tiny" / "smoke.yaml", ["learner.lr=0.5", "rollout.temperature_range=[0.5, 1.5]", "run.dir=x"])
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


def test_teacher_rewards_need_a_teacher_and_templates_are_checked():
    with pytest.raises(ConfigError, match="need teacher.path"):
        load_config(None, ["reward.combiner=minillm"])
    with pytest.raises(ConfigError, match="need teacher.path"):
        load_config(None, ["reward.terms=[{name: teacher_loglik}]"])
    with pytest.raises(ConfigError, match=r"question_template may only use \{question\}, \{raw_question\} and \{answer\}"):
        load_config(None, ["teacher.path=x", "teacher.question_template={question} {hint}"])
    cfg = load_config(REPO / "configs" / "demo" / "distill.yaml")
    assert "{question}" in cfg.teacher.question_template and cfg.reward.combiner == "minillm"
    cfg = load_config(REPO / "configs" / "demo" / "distill.yaml", ["teacher.question_template=Q {question} A {answer}"])
    assert cfg.teacher.question_template == "Q {question} A {answer}"


def test_lpt_text_sources(tmp_path):
    from rlsys.errors import DataError
    from rlsys.data.text import BlockStream, load_texts, resolve_text_path

    assert resolve_text_path("reasoning_gym:in_the_year_2889.txt").is_file()
    bad = tmp_path / "t.jsonl"
    bad.write_text('{"text": "a b c"}\n{"body": "x"}\n')
    with pytest.raises(DataError, match=r"t.jsonl:2: field 'text' is missing"):
        load_texts(str(bad))
    with pytest.raises(DataError, match="does not exist"):
        load_texts(str(tmp_path / "none.txt"))
    stream = BlockStream([[0], [1], [2], [3], [4]], rank=1, world_size=2)
    assert stream.take(3) == [[1], [3], [1]]


def test_empty_config_file_is_refused(tmp_path):
    f = tmp_path / "empty.yaml"
    f.write_text("# nothing but a comment\n")
    with pytest.raises(ConfigError, match=rf"config file {f} is empty"):
        load_config(f)
    bom = tmp_path / "bom.yaml"
    bom.write_bytes(b"\xef\xbb\xbfrun:\n  seed: 7\n")
    assert load_config(bom).run.seed == 7


def test_group_size_one_is_refused_for_grpo_but_not_minillm():
    with pytest.raises(ConfigError, match=r"group_size=1: .* every advantage is 0"):
        load_config(None, ["rollout.group_size=1", "learner.mini_batch_size=8"])
    cfg = load_config(None, ["rollout.group_size=1", "learner.mini_batch_size=8", "teacher.path=x",
                             "reward.combiner=minillm"])
    assert cfg.rollout.group_size == 1


def test_phase_timeouts_are_checked_and_looked_up():
    cfg = load_config(None, ["run.phase_timeout_s=100", "run.phase_timeouts={reward: 5}"])
    assert cfg.run.timeout("reward") == 5 and cfg.run.timeout("train") == 100
    with pytest.raises(ConfigError, match=r"unknown phase\(s\) \['rewards'\]"):
        load_config(None, ["run.phase_timeouts={rewards: 5}"])
    with pytest.raises(ConfigError, match="loss_agg"):
        load_config(None, ["algorithm.loss_agg=mean"])


def test_old_grpo_section_is_read_as_the_algorithm_with_a_note(tmp_path, capsys):
    f = tmp_path / "old.yaml"
    f.write_text("grpo:\n  kl_beta: 0.25\n  clip_eps: 0.3\n")
    cfg = load_config(f, ["grpo.kl_estimator=k1"])
    assert (cfg.algorithm.type, cfg.algorithm.kl_beta, cfg.algorithm.clip_eps, cfg.algorithm.kl_estimator) == (
        "grpo", 0.25, 0.3, "k1")
    assert "the `grpo:` section is now `algorithm: {type: grpo, ...}`" in capsys.readouterr().err
    with pytest.raises(ConfigError, match=r"both `grpo:` and `algorithm:` are set"):
        load_config(f, ["algorithm.kl_beta=0.1"])
    with pytest.raises(ConfigError, match=r"algorithm.type"):
        load_config(None, ["algorithm.type=dpo"])
