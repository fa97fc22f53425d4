"""The critic's value model and the reward-model scorer against full HF forwards of each
sequence alone, and the checks that refuse bad critic and reward-model paths before any
actor starts."""

import shutil

import pytest
import torch

from rlsys.config import load_config
from rlsys.errors import RunError
from rlsys.models.logprobs import pack_sequences
from rlsys.training.critic import load_value_model, token_values, value_head
from rlsys.models.reward_model_check import REWARD_MODEL_SETTINGS, check_reward_model
from rlsys.workers.reward_model import RewardModelScorer
from rlsys.errors import RewardModelError


@pytest.fixture(scope="module")
def reward_model_path():
    from rlsys.models.catalog import resolve_model

    return resolve_model("tiny-random-reward-model")


def test_value_of_each_completion_token_is_read_where_it_is_predicted(tiny_model_path, tmp_path):
    model = load_value_model(tiny_model_path)
    prompts, completions = [[5, 6, 7], [8, 9]], [[10, 11], [12, 13, 14, 15]]
    with torch.no_grad():
        zero, _ = token_values(model, pack_sequences(prompts, completions, pad_id=0))
        assert zero.abs().max().item() == 0.0  # a new head starts every value at 0
        torch.manual_seed(0)
        for p in value_head(model).parameters():
            p.normal_(0, 0.5)
        got, mask = token_values(model.eval(), pack_sequences(prompts, completions, pad_id=0))
        for i, (p, c) in enumerate(zip(prompts, completions)):
            alone = model(input_ids=torch.tensor([p + c])).logits[0, :, 0]
            # completion token t is predicted at position len(p) + t - 1
            want = alone[len(p) - 1 : len(p) + len(c) - 1]
            assert torch.allclose(got[i, : len(c)], want, atol=1e-5)
            assert got[i, len(c):].abs().sum().item() == 0.0 and int(mask[i].sum()) == len(c)
    # A critic saved by a run reloads with its head (not zeroed again).
    model.save_pretrained(tmp_path / "critic")
    again = load_value_model(str(tmp_path / "critic"))
    assert torch.equal(value_head(again).weight, value_head(model).weight)


@pytest.mark.parametrize("side", ["right", "left"])
def test_reward_model_scores_equal_a_standalone_forward(reward_model_path, side):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    scorer = RewardModelScorer(reward_model_path, batch_size=3, padding_side=side)
    questions = ["What is 2 + 3?", "Name a Faroese island.", "Sum 7 and 8 and 9, please, showing steps."]
    completions = ["5", "Streymoy is the largest of the islands.", "7 + 8 = 15, 15 + 9 = 24. The answer is 24."]
    got = scorer.score(questions, completions)
    tok = AutoTokenizer.from_pretrained(reward_model_path)
    model = AutoModelForSequenceClassification.from_pretrained(reward_model_path, dtype=torch.float32).eval()
    lengths = set()
    for q, c, g in zip(questions, completions, got):
        text = tok.apply_chat_template([{"role": "user", "content": q}, {"role": "assistant", "content": c}],
                                       tokenize=False)
        ids = tok(text, add_special_tokens=False, return_tensors="pt").input_ids
        lengths.add(ids.shape[1])
        with torch.no_grad():
            want = float(model(input_ids=ids).logits[0, 0])
        assert g == pytest.approx(want, abs=1e-4)
    assert len(lengths) == 3  # the batch really was padded
    assert len({round(g, 4) for g in got}) == 3


def test_reward_model_path_checks(tiny_model_path, reward_model_path, tmp_path):
    with pytest.raises(RewardModelError, match="not a sequence classifier"):
        check_reward_model(tiny_model_path)
    no_pad = tmp_path / "no_pad"
    shutil.copytree(reward_model_path, no_pad)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(no_pad)
    tok.pad_token = None
    tok.save_pretrained(no_pad)
    with pytest.raises(RewardModelError, match="no pad token"):
        check_reward_model(str(no_pad))


def test_bad_critic_and_reward_model_paths_fail_in_preparation(tiny_model_path, reward_model_path, tmp_path):
    import ray

    from rlsys.models.tiny import build_tiny_model
    from rlsys.preparation import prepare

    base = [f"model.path={tiny_model_path}", "algorithm.type=ppo", "data.train_size=8", "data.eval_size=4"]
    with pytest.raises(RunError, match="critic.path: .* not a causal LM"):
        prepare(load_config(None, base + [f"critic.path={reward_model_path}"]))
    other_vocab = build_tiny_model(tmp_path / "other-vocab", vocab_size=600, seed=1)
    with pytest.raises(RunError, match=r"critic.path: the critic's vocabulary \(.*other-vocab: 600 tokens\) differs "
                                       r"from the policy's \(.*: 1024 tokens\)"):
        prepare(load_config(None, base + [f"critic.path={other_vocab}"]))
    rm_term = f'reward.terms=[{{name: correctness}}, {{name: reward_model, kwargs: {{path: {tiny_model_path}}}}}]'
    with pytest.raises(RewardModelError, match="not a sequence classifier"):
        prepare(load_config(None, base + [rm_term]))
    bad_kw = f'reward.terms=[{{name: reward_model, kwargs: {{path: {reward_model_path}, batchsize: 4}}}}]'
    with pytest.raises(RunError, match="unknown kwargs \\['batchsize'\\]"):
        prepare(load_config(None, base + [bad_kw]))
    assert not ray.is_initialized()  # refused before any actor


def test_reward_model_settings_are_the_scorers_parameters():
    """The kwargs preparation accepts for a `reward_model` term are exactly what the actor takes."""
    import inspect

    params = set(inspect.signature(RewardModelScorer.__init__).parameters) - {"self"}
    # Ray adds a tracing parameter to a class it has wrapped as an actor (as a run does).
    assert set(REWARD_MODEL_SETTINGS) == {p for p in params if not p.startswith("_ray")}
