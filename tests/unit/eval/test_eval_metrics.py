"""Evaluation metrics against values computed independently: SQuAD EM/F1 against torchmetrics
and hand-worked cases, BLEU and chrF against plain re-implementations of their definitions and
sacrebleu's documented example, ROUGE by hand (and on Faroese letters), pass@k by enumerating
every subset, intervals with the standard library's normal distribution."""

import itertools
import math
import statistics
from collections import Counter

import pytest

from rlsys.eval.stats import bootstrap_ci, mean_ci, pass_at_k
from rlsys.eval.text_metrics import corpus_bleu, corpus_chrf, exact_match, normalize_answer, rouge, token_f1


@pytest.mark.parametrize("text, expected", [
    ("The Cat!", "cat"),
    ("  an   apple, a pear ", "apple pear"),
    ("Theatre", "theatre"),  # 'the' only as a whole word
    ("1,000.5 dollars", "10005 dollars"),
    ("Þórshavn.", "þórshavn"),
])
def test_squad_normalisation_cases(text, expected):
    assert normalize_answer(text) == expected


def test_exact_match_and_f1_by_hand():
    assert exact_match("the Eiffel Tower.", ["Eiffel tower", "Paris"]) == 1.0
    assert exact_match("Eiffel", ["Eiffel tower"]) == 0.0
    # pred {cat, sat}, gold {cat, sat, on, mat}: P = 1, R = 1/2, F1 = 2/3
    assert token_f1("the cat sat", ["a cat sat on the mat"]) == pytest.approx(2 / 3)
    # the best answer counts
    assert token_f1("cat", ["dog", "cat"]) == 1.0
    assert token_f1("", ["cat"]) == 0.0


def test_squad_against_torchmetrics():
    from torchmetrics.functional.text import squad

    cases = [("The cat sat", ["a cat sat on the mat"]), ("Tórshavn", ["Tórshavn", "Havn"]),
             ("in 1816, the year", ["1816"]), ("no idea", ["Sandoy"]), ("the blue whale", ["Blue whale", "whale"])]
    for i, (pred, answers) in enumerate(cases):
        ref = squad([{"prediction_text": pred, "id": str(i)}],
                    [{"answers": {"answer_start": [0] * len(answers), "text": answers}, "id": str(i)}])
        assert exact_match(pred, answers) * 100 == pytest.approx(float(ref["exact_match"]))
        assert token_f1(pred, answers) * 100 == pytest.approx(float(ref["f1"]), abs=1e-4)


def _plain_bleu(hyps, refs):
    """BLEU-4 from its definition on whitespace tokens (the hypotheses here need no tokenizer)."""
    matches, totals = [0] * 4, [0] * 4
    hyp_len = ref_len = 0
    for h, r in zip(hyps, refs):
        h, r = h.split(), r.split()
        hyp_len, ref_len = hyp_len + len(h), ref_len + len(r)
        for n in range(1, 5):
            hc = Counter(tuple(h[i:i + n]) for i in range(len(h) - n + 1))
            rc = Counter(tuple(r[i:i + n]) for i in range(len(r) - n + 1))
            matches[n - 1] += sum((hc & rc).values())
            totals[n - 1] += max(0, len(h) - n + 1)
    log_p = sum(math.log(m / t) for m, t in zip(matches, totals)) / 4
    bp = 1.0 if hyp_len > ref_len else math.exp(1 - ref_len / hyp_len)
    return 100 * bp * math.exp(log_p)


def test_bleu_against_definition_and_sacrebleu_example():
    hyps = ["the cat sat on the mat today", "a dog ran in the big park", "birds sing in the early morning light"]
    refs = ["the cat sat on the mat", "a dog ran in the park", "the birds sing in the morning light"]
    assert corpus_bleu(hyps, refs) == pytest.approx(_plain_bleu(hyps, refs), abs=1e-6)
    assert corpus_bleu(refs, refs) == pytest.approx(100.0)
    # sacrebleu's README example, first reference stream only: BLEU with one reference set
    sys_ = ["The dog bit the man.", "It wasn't surprising.", "The man had just bitten him."]
    ref1 = ["The dog bit the man.", "It was not unexpected.", "The man bit him first."]
    # 13a splits the final period off and keeps "wasn't" whole
    tokenized = [" ".join(s.replace(".", " .").split()) for s in sys_]
    ref_tok = [" ".join(s.replace(".", " .").split()) for s in ref1]
    assert corpus_bleu(sys_, ref1) == pytest.approx(_plain_bleu(tokenized, ref_tok), abs=1e-6)


def _plain_chrf(hyps, refs, n=6, beta=2.0):
    """chrF from its definition: character n-grams (spaces removed), precision and recall
    averaged over n = 1..6 on corpus counts, then F-beta."""
    precs, recs = [], []
    for order in range(1, n + 1):
        match = hyp_total = ref_total = 0
        for h, r in zip(hyps, refs):
            h, r = h.replace(" ", ""), r.replace(" ", "")
            hc = Counter(h[i:i + order] for i in range(len(h) - order + 1))
            rc = Counter(r[i:i + order] for i in range(len(r) - order + 1))
            match += sum((hc & rc).values())
            hyp_total += sum(hc.values())
            ref_total += sum(rc.values())
        precs.append(match / hyp_total if hyp_total else 0.0)
        recs.append(match / ref_total if ref_total else 0.0)
    p, r = sum(precs) / n, sum(recs) / n
    return 100 * (1 + beta**2) * p * r / (beta**2 * p + r)


def test_chrf_against_definition_on_faroese():
    hyps = ["Zip skjalasavn", "handbókarsíða", "TeX DVI skjal"]
    refs = ["Zip skjalasavn", "handbókasíða (stappað)", "TeX DVI skjal (gzip-stappað)"]
    assert corpus_chrf(hyps, refs) == pytest.approx(_plain_chrf(hyps, refs), abs=1e-6)
    assert corpus_chrf(refs, refs) == pytest.approx(100.0)


def test_rouge_by_hand_and_with_faroese_letters():
    r = rouge(["the cat lay on the mat"], ["the cat sat on the mat"])[0]
    assert r["rouge1"] == pytest.approx(5 / 6)  # the, the, cat, on, mat of 6
    assert r["rouge2"] == pytest.approx(3 / 5)  # 'the cat', 'on the', 'the mat' of 5 bigrams
    assert r["rougeL"] == pytest.approx(5 / 6)  # LCS 'the cat on the mat'
    # rouge-score's default tokenizer would drop ó and ð and call these equal
    fo = rouge(["góðan morgun"], ["góðan dag"])[0]
    assert fo["rouge1"] == pytest.approx(0.5)
    assert rouge(["gódan dag"], ["góðan dag"])[0]["rouge1"] == pytest.approx(0.5)


def test_pass_at_k_equals_enumeration_of_subsets():
    for n, c in [(4, 0), (4, 1), (5, 2), (6, 3), (5, 5)]:
        outcomes = [1] * c + [0] * (n - c)
        for k in range(1, n + 1):
            subsets = list(itertools.combinations(outcomes, k))
            expected = sum(any(s) for s in subsets) / len(subsets)
            assert pass_at_k(n, c, k) == pytest.approx(expected)
    with pytest.raises(ValueError):
        pass_at_k(2, 1, 3)


def test_mean_interval_is_the_normal_approximation():
    values = [1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.5, 0.25]
    est = mean_ci(values)
    z = statistics.NormalDist().inv_cdf(0.975)
    half = z * statistics.stdev(values) / math.sqrt(len(values))
    assert est.value == pytest.approx(statistics.mean(values))
    assert (est.low, est.high) == pytest.approx((est.value - half, est.value + half))
    assert est.n == 8
    assert mean_ci([0.3]).low is None


@pytest.mark.parametrize("successes, n", [(0, 200), (3, 200), (50, 100), (7, 7), (1, 10)])
def test_proportions_get_the_wilson_interval(successes, n):
    """The Wilson interval is every p with |p_hat - p| <= z sqrt(p (1 - p) / n): found by a scan."""
    z = statistics.NormalDist().inv_cdf(0.975)
    p_hat = successes / n
    inside = [i / 100000 for i in range(100001)
              if abs(p_hat - i / 100000) <= z * math.sqrt(i / 100000 * (1 - i / 100000) / n)]
    est = mean_ci([1.0] * successes + [0.0] * (n - successes))
    assert est.value == pytest.approx(p_hat)
    assert est.low == pytest.approx(min(inside), abs=2e-5) and est.high == pytest.approx(max(inside), abs=2e-5)


def test_bootstrap_interval_brackets_the_value_and_is_seeded():
    rows = list(range(40))
    est = bootstrap_ci(rows, lambda r: sum(r) / len(r))
    assert est.low < est.value < est.high
    assert est.value == pytest.approx(19.5)
    # the standard error of a mean of 0..39 is about 1.8: the interval is about +-3.6 wide
    assert 2.0 < (est.high - est.low) / 2 < 5.0
    assert bootstrap_ci(rows, lambda r: sum(r) / len(r)) == est
    const = bootstrap_ci([2.0] * 10, lambda r: sum(r) / len(r))
    assert const.low == const.high == 2.0
