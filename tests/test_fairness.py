"""Fair-share arithmetic: weighted water-filling and Jain's index."""

import pytest

from tasks_app.fairness import jain_index, weighted_fill


def test_capacity_is_shared_by_weight_when_every_demand_exceeds_it():
    fair = weighted_fill(6.0, {"a": 10.0, "b": 10.0}, {"a": 2, "b": 1})

    assert fair == pytest.approx({"a": 4.0, "b": 2.0})


def test_a_capped_demand_leaves_its_rest_to_the_others_by_weight():
    # Two members, three lanes: a lane can use at most the window (10 s).
    fair = weighted_fill(
        20.0, {"a": 10.0, "b": 10.0, "c": 10.0}, {"a": 4, "b": 1, "c": 1}
    )

    assert fair == pytest.approx({"a": 10.0, "b": 5.0, "c": 5.0})


def test_a_lane_that_wanted_less_gets_what_it_wanted():
    fair = weighted_fill(9.0, {"a": 1.0, "b": 100.0}, {"a": 1, "b": 1})

    assert fair == pytest.approx({"a": 1.0, "b": 8.0})


def test_jain_index_is_one_for_equal_shares_and_one_over_n_for_a_monopoly():
    assert jain_index([3.0, 3.0, 3.0]) == pytest.approx(1.0)
    assert jain_index([9.0, 0.0, 0.0]) == pytest.approx(1 / 3)
    assert jain_index([]) is None
    assert jain_index([0.0]) is None
