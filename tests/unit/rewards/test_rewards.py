import pytest

from rlsys.config import RewardTerm
from rlsys.rewards.answers import answers_match, extract_answer
from rlsys.rewards.registry import RewardSet, load_reward
from rlsys.errors import RewardError

XML_OK = "<reasoning>3 + 4 is 7, minus 2 is 5</reasoning>\n<answer>5</answer>"


def test_extract_answer_prefers_tags_then_hashes_then_last_number():
    assert extract_answer(XML_OK) == "5"
    assert extract_answer("so 12 apples\n#### 1,234") == "1,234"
    assert extract_answer("I think 3 then 8.") == "8"
    assert extract_answer("I think 3 then 8.", strict=True) is None
    assert extract_answer("no digits here") is None


@pytest.mark.parametrize("pred,ref,ok", [("1,234", "1234", True), ("$5.00", "5", True), ("-4", "-4", True),
                                         ("= 42 apples", "42", True), ("41", "42", False), (None, "1", False)])
def test_answers_match(pred, ref, ok):
    assert answers_match(pred, ref) is ok


def test_default_reward_set_weights_by_hand():
    rs = RewardSet([RewardTerm(name="correctness", weight=1.0), RewardTerm(name="format", weight=0.5),
                    RewardTerm(name="reasoning", weight=0.1)])
    total, parts = rs.score(["p"] * 3, [XML_OK, "the answer is 5", "<answer>6</answer>"], ["5", "5", "5"])
    assert parts["correctness"] == [1.0, 1.0, 0.0]
    assert parts["format"] == [1.0, 0.0, 0.0]
    assert parts["reasoning"] == [1.0, 0.0, 0.0]
    assert total == pytest.approx([1.6, 1.0, 0.0])


def test_brevity_penalty_by_hand():
    rs = RewardSet([RewardTerm(name="brevity", weight=1.0, kwargs={"target_chars": 10, "scale_chars": 20})])
    total, _ = rs.score(["p"] * 3, ["x" * 5, "x" * 20, "x" * 100], ["", "", ""])
    assert total == pytest.approx([0.0, -0.5, -1.0])


def user_reward(prompts, completions, answers, **fields):
    return [float(len(c)) for c in completions]


def test_user_reward_by_dotted_path_and_bad_names():
    assert load_reward("tests.unit.rewards.test_rewards:user_reward") is user_reward
    assert load_reward("tests.unit.rewards.test_rewards.user_reward") is user_reward
    with pytest.raises(RewardError, match="unknown reward 'nope'"):
        load_reward("nope")
    with pytest.raises(RewardError, match="cannot import module"):
        load_reward("no_such_pkg.mod:fn")
    with pytest.raises(RewardError, match="has no callable 'missing'"):
        load_reward("tests.unit.rewards.test_rewards:missing")
    with pytest.raises(RewardError, match="returned 1 values for 2"):
        RewardSet([RewardTerm(name="tests.unit.rewards.test_rewards:_one")]).score(["a", "b"], ["a", "b"], ["", ""])


def _one(prompts, completions, answers, **_):
    return [0.0]


@pytest.mark.parametrize("text,style,ok", [
    (XML_OK, "xml", True),
    ("<reasoning>3 + 4 = 7, minus 2</reasoning>\n<answer>1</answer> junk </answer>", "xml", False),
    ("<reasoning>3 + 4 = 7, minus 2</reasoning><answer>5</answer><answer>6</answer>", "xml", False),
    ("<reasoning>a</reasoning><reasoning>b</reasoning><answer>5</answer>", "xml", False),
    ("<reasoning>so</reasoning><answer>5</answer> trailing words", "xml", False),
    ("3 + 4 is 7\n#### 7", "xml", False),  # the XML template does not take '####' unless asked
    ("3 + 4 is 7\n#### 7", "hash", True),
    ("3 + 4 is 7\n#### 1,234.5\n", "hash", True),
    ("3 + 4 is 7\n#### ???", "hash", False),
    ("#### 3\nthen #### 7", "hash", False),
    ("3 + 4 is 7\n#### 7", "any", True),
    (XML_OK, "hash", False),
])
def test_format_layouts(text, style, ok):
    from rlsys.rewards.format import format_reward

    assert format_reward([], [text], [""], style=style) == [float(ok)]


def test_format_style_follows_the_template_unless_asked():
    hashed = "3 + 4 is 7\n#### 7"
    xml_run = RewardSet([RewardTerm(name="format")], template="xml")
    assert xml_run.score(["p"], [hashed], ["7"])[0] == [0.0]
    plain_run = RewardSet([RewardTerm(name="format")], template="plain")
    assert plain_run.score(["p"], [hashed], ["7"])[0] == [1.0]
    asked = RewardSet([RewardTerm(name="format", kwargs={"style": "any"})], template="xml")
    assert asked.score(["p"], [hashed], ["7"])[0] == [1.0]
