import pytest

from rlsys.training.engine import cosine_with_warmup, micro_batches
from rlsys.data.samplers import group_temperatures


def test_cosine_with_warmup_by_hand():
    assert cosine_with_warmup(0, 10, 2, 0.1) == pytest.approx(0.5)
    assert cosine_with_warmup(1, 10, 2, 0.1) == pytest.approx(1.0)
    assert cosine_with_warmup(2, 10, 2, 0.1) == pytest.approx(1.0)
    assert cosine_with_warmup(6, 10, 2, 0.1) == pytest.approx(0.1 + 0.9 * 0.5)  # halfway
    assert cosine_with_warmup(10, 10, 2, 0.1) == pytest.approx(0.1)


def test_micro_batches_sort_by_length():
    assert micro_batches([0, 1, 2, 3, 4], [5, 1, 4, 2, 3], 2) == [[1, 3], [4, 2], [0]]


def test_group_temperatures():
    assert group_temperatures(3, 0.9, None) == [0.9, 0.9, 0.9]
    assert group_temperatures(5, 1.0, (0.7, 1.3)) == pytest.approx([0.7, 0.85, 1.0, 1.15, 1.3])
