"""Token in, token out on a real chat template (the tiny test model's ChatML): the ids rlsys
puts between turns are those of the whole conversation rendered at once, the loss mask is 1
exactly on the ids the model sampled, ids that decode and re-encode differently are kept as
sampled, and each way an episode ends is named."""

import pytest
from transformers import AutoTokenizer

from rlsys.envs.base import StepResult
from rlsys.envs.episode import Episode, EpisodeLimits
from rlsys.envs.tokens import TurnTokens
from rlsys.envs.tool_env import ToolEnvironment
from rlsys.envs.tools.calculator import Calculator
from rlsys.envs.turn_loop import ModelTurn, run_episodes


@pytest.fixture(scope="module")
def tok(tiny_model_path):
    return AutoTokenizer.from_pretrained(tiny_model_path)


def _scripted(tok, replies: list[list[str]]):
    """A generate function that 'samples' each episode's scripted replies in order, as the
    tokenizer encodes them plus its end-of-turn token (ChatML's <|im_end|>); log-prob -0.5 each."""
    calls = {}

    def generate(episodes):
        out = []
        for e in episodes:
            k = calls[e.prompt_index] = calls.get(e.prompt_index, -1) + 1
            text = replies[e.prompt_index][k]
            ids = tok(text, add_special_tokens=False).input_ids + [tok.convert_tokens_to_ids("<|im_end|>")]
            out.append(ModelTurn(ids, [-0.5] * len(ids), text, version=7 + k))
        return out
    return generate


def _stepper(envs):
    def step(episodes, texts):
        return [envs[e.prompt_index].step(t) for e, t in zip(episodes, texts)]
    return step


def test_three_turns_with_a_calculator_are_the_whole_conversation_rendered_at_once(tok):
    env = ToolEnvironment([Calculator()])
    first = env.reset({"question": "What is 12 - 45 + 7?"})
    tt = TurnTokens(tok)
    replies = ['<tool_call>{"name": "calculator", "arguments": {"expression": "12 - 45"}}</tool_call>',
               '<tool_call>{"name": "calculator", "arguments": {"expression": "-33 + 7"}}</tool_call>',
               "The answer is -26."]
    episode = Episode(0, tt.prompt_ids(first), 1.0, EpisodeLimits(max_turns=4, max_tokens=2000))
    [traj] = run_episodes([episode], _scripted(tok, [replies]), _stepper([env]), tt)

    assert traj.status == "done" and traj.tool_calls == 2 and traj.tool_errors == 0
    assert traj.turn_versions == [7, 8, 9] and traj.final_text == "The answer is -26."
    # the reference: the same conversation through the chat template in one go
    conversation = first + [{"role": "assistant", "content": replies[0]}, {"role": "tool", "content": "-33"},
                            {"role": "assistant", "content": replies[1]}, {"role": "tool", "content": "-26"},
                            {"role": "assistant", "content": replies[2]}]
    whole = tok(tok.apply_chat_template(conversation, tokenize=False), add_special_tokens=False).input_ids
    # the whole render ends each assistant turn with <|im_end|>\n; the episode stops after the sampled <|im_end|>
    assert traj.prompt_ids + traj.completion_ids == whole[:-1]
    # the mask: 1 on exactly the sampled ids, in order
    sampled = [tok(r, add_special_tokens=False).input_ids + [tok.convert_tokens_to_ids("<|im_end|>")] for r in replies]
    assert [i for i, m in zip(traj.completion_ids, traj.loss_mask) if m] == sum(sampled, [])
    assert sum(traj.loss_mask) == sum(map(len, sampled)) and traj.env_tokens == len(traj.completion_ids) - sum(traj.loss_mask)
    assert all(lp == (-0.5 if m else 0.0) for lp, m in zip(traj.sampling_logprobs, traj.loss_mask))
    # each turn ends on its last sampled id
    starts = [traj.completion_ids.index(s[0]) for s in sampled[:1]]
    assert [traj.loss_mask[e] for e in traj.turn_ends] == [1, 1, 1] and starts == [0]
    assert [traj.completion_ids[e] for e in traj.turn_ends] == [s[-1] for s in sampled]
    assert traj.loss_mask[traj.turn_ends[0] + 1] == 0 and traj.loss_mask[traj.turn_ends[1] + 1] == 0


def _split_word(tok):
    """A word the tokenizer writes as one id that two other ids also spell: sampled as the two,
    it decodes to the word and re-encodes as the one."""
    vocab = tok.get_vocab()
    for piece, wid in sorted(vocab.items(), key=lambda kv: kv[1]):
        if len(piece) < 4 or not piece.isalpha() or tok(piece, add_special_tokens=False).input_ids != [wid]:
            continue
        for cut in range(1, len(piece)):
            a, b = piece[:cut], piece[cut:]
            if a in vocab and b in vocab:
                return piece, wid, [vocab[a], vocab[b]]
    raise AssertionError("no splittable word in this vocabulary")


def test_ids_that_re_encode_differently_are_kept_as_sampled(tok):
    word, word_id, split = _split_word(tok)
    assert tok.decode(split) == word and tok(tok.decode(split), add_special_tokens=False).input_ids == [word_id]
    tt = TurnTokens(tok)
    end = tok.convert_tokens_to_ids("<|im_end|>")

    def generate(episodes):
        return [ModelTurn(split + [end], [-1.0, -2.0, -0.1], word, version=1) for _ in episodes]

    env = ToolEnvironment([Calculator()])
    e = Episode(0, tt.prompt_ids(env.reset({"question": "say a word"})), 1.0, EpisodeLimits())
    [traj] = run_episodes([e], generate, _stepper([env]), tt)
    assert traj.completion_ids == split + [end] and traj.loss_mask == [1, 1, 1]
    assert traj.sampling_logprobs == [-1.0, -2.0, -0.1]
    # what a re-rendering trainer would have scored instead
    rerendered = tok(tok.apply_chat_template(env.reset({"question": "say a word"}) +
                                             [{"role": "assistant", "content": word}], tokenize=False),
                     add_special_tokens=False).input_ids
    assert rerendered[len(traj.prompt_ids):len(traj.prompt_ids) + 1] == [word_id] != split[:1]


def test_budgets_and_failures_end_episodes_by_name(tok):
    tt = TurnTokens(tok)
    call = '<tool_call>{"name": "calculator", "arguments": {"expression": "1+1"}}</tool_call>'
    env = ToolEnvironment([Calculator()])
    prompt = tt.prompt_ids(env.reset({"question": "q"}))
    # always calling a tool: the turn budget ends it, after 2 turns
    [t] = run_episodes([Episode(0, prompt, 1.0, EpisodeLimits(max_turns=2, max_tokens=5000))],
                       _scripted(tok, [[call] * 5]), _stepper([env]), tt)
    assert t.status == "max_turns" and t.truncated and len(t.turn_ends) == 2 and t.tool_calls == 2
    # a token budget smaller than two turns and the tool answer between them
    one_turn = len(tok(call, add_special_tokens=False).input_ids) + 1
    [t] = run_episodes([Episode(0, prompt, 1.0, EpisodeLimits(max_turns=9, max_tokens=one_turn + 3))],
                       _scripted(tok, [[call] * 5]), _stepper([env]), tt)
    assert t.status == "max_tokens" and t.truncated and len(t.completion_ids) == one_turn

    # an environment that raises ends its own episode only
    def step(episodes, texts):
        return [RuntimeError("env broke") if e.prompt_index == 0 else StepResult(done=True) for e in episodes]

    eps = [Episode(i, prompt, 1.0, EpisodeLimits()) for i in range(2)]
    t0, t1 = run_episodes(eps, _scripted(tok, [["a"], ["b"]]), step, tt)
    assert (t0.status, t0.error) == ("failed", "RuntimeError: env broke") and not t0.truncated
    assert t1.status == "done" and t1.error is None


def test_a_template_that_rewrites_history_is_refused():
    class Rewriting:
        chat_template = "x"

        def apply_chat_template(self, messages, add_generation_prompt, tokenize):
            # drops every earlier assistant turn's text once a later message exists (as some templates drop old reasoning)
            last = len(messages) - 1
            return "".join(f"<{m['role']}>" + ("" if m["role"] == "assistant" and i < last else m["content"])
                           for i, m in enumerate(messages)) + ("<assistant>" if add_generation_prompt else "")

        def __call__(self, text, add_special_tokens=False):
            class Out:
                input_ids = [ord(c) for c in text]
            return Out()

    tt = TurnTokens(Rewriting())
    with pytest.raises(ValueError, match="rewrites the history"):
        tt.observation_ids([{"role": "tool", "content": "1"}])


def test_an_episode_whose_environment_is_lost_is_re_run_once_from_its_start(tok):
    from rlsys.envs.base import EnvironmentLost

    tt = TurnTokens(tok)
    prompt = tt.prompt_ids([{"role": "user", "content": "q"}])
    losses = {0: 1, 1: 2}  # episode 0 loses its environment once, episode 1 twice

    def step(episodes, texts):
        out = []
        for e in episodes:
            if losses[e.prompt_index] > 0:
                losses[e.prompt_index] -= 1
                out.append(EnvironmentLost("actor died"))
            else:
                out.append(StepResult(done=True))
        return out

    restarted = []

    def restart(e):
        restarted.append(e.prompt_index)
        return Episode(e.prompt_index, e.prompt_ids, e.temperature, e.limits)

    t0, t1 = run_episodes([Episode(i, prompt, 1.0, EpisodeLimits()) for i in range(2)],
                          _scripted(tok, [["a", "b"], ["c", "d"]]), step, tt, restart)
    assert restarted == [0, 1]
    # episode 0: its second run is the one kept, one model turn (the second scripted reply)
    assert t0.status == "done" and t0.final_text == "b" and len(t0.turn_ends) == 1
    assert t1.status == "failed" and "actor died" in t1.error
