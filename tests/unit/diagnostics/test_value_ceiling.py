"""The critic's explained-variance ceiling, worked by hand on two prompts."""

import pytest

from rlsys.diagnostics.value_ceiling import ScoredSample, value_ceiling

# Prompt A: pass rate 3/4 from its draws; B: 1/4. Returns per state: A1 1 (2 states, the last
# after its answer), A2 0 (1 state), B1 0 (1 state), B2 0 (3 states, the last after its answer).
GROUPS = [
    ([ScoredSample(1.0, 2, 1), ScoredSample(0.0, 1, 0)], [1.0, 0.0, 1.0, 1.0]),
    ([ScoredSample(0.0, 1, 0), ScoredSample(0.0, 3, 1)], [0.0, 1.0, 0.0, 0.0]),
]


def test_ceilings_match_the_hand_computation():
    c = value_ceiling(GROUPS)
    # Sequences: R = 1,0,0,0 and V = .75,.75,.25,.25: Var(R) = 3/16, Var(R - V) = 1/8.
    assert c.prompt_only_sequence == pytest.approx(1 - (1 / 8) / (3 / 16))
    # States (7): Var(R) = 10/49, Var(R - V) = 5/49.
    assert c.prompt_only_token == pytest.approx(0.5)
    # After the answer V = R on A1's second and B2's third state: Var(R - V) = 462/5488.
    assert c.answer_aware_token == pytest.approx(1 - 462 / 1120)
    assert c.share_after_answer == pytest.approx(2 / 7)


def test_a_prompt_with_no_draws_or_too_many_answer_states_is_refused():
    with pytest.raises(ValueError, match="further draw"):
        value_ceiling([([ScoredSample(1.0, 2)], [])])
    with pytest.raises(ValueError, match="tokens_after_answer"):
        value_ceiling([([ScoredSample(1.0, 2, 3)], [1.0])])
