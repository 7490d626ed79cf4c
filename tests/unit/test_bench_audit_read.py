"""bench.audit_read's summary over rounds: each variant against the unrecorded apps, and the
confidence interval that says whether the benchmark can tell them apart."""

from __future__ import annotations

import math

import pytest

from bench.audit_read import AGAIN, SPOOLED, UNRECORDED, Figures, differences, interval

pytestmark = pytest.mark.unit


def measured(
    requests: dict[str, float], cpu: dict[str, float], shipper: dict[str, float] | None = None
) -> Figures:
    return Figures(
        clients=20,
        seconds_each=30.0,
        variants=list(requests),
        kinds=[],
        requests_per_s=requests,
        cpu_us_per_request=cpu,
        system_cpu_us_per_request=dict.fromkeys(requests, 0.0),
        postgres_cpu_us_per_request=dict.fromkeys(requests, 0.0),
        entries_per_transaction={},
        entries=0,
        chain_intact=True,
        shipper_cpu_us_per_request=shipper or {},
    )


def test_a_variant_is_compared_with_the_mean_of_both_unrecorded_apps() -> None:
    rounds = [
        measured(
            {UNRECORDED: 400.0, UNRECORDED + AGAIN: 600.0, SPOOLED: 490.0, SPOOLED + AGAIN: 500.0},
            {UNRECORDED: 800.0, UNRECORDED + AGAIN: 800.0, SPOOLED: 840.0, SPOOLED + AGAIN: 840.0},
            {SPOOLED: 40.0, SPOOLED + AGAIN: 40.0},
        ),
        measured(
            {UNRECORDED: 500.0, UNRECORDED + AGAIN: 500.0, SPOOLED: 510.0, SPOOLED + AGAIN: 510.0},
            {UNRECORDED: 900.0, UNRECORDED + AGAIN: 700.0, SPOOLED: 800.0, SPOOLED + AGAIN: 800.0},
        ),
    ]
    found = differences(rounds)
    assert found[SPOOLED]["requests_per_s"] == pytest.approx([-1.0, 2.0])
    assert found[SPOOLED]["cpu_us_per_request"] == pytest.approx([5.0, 0.0])
    # the shipper's CPU counts with its app's (a process of its own beside it)
    assert found[SPOOLED]["cpu_with_shipper_us_per_request"] == pytest.approx([10.0, 0.0])
    noise = found[f"{UNRECORDED}{AGAIN} vs {UNRECORDED}"]
    assert noise["requests_per_s"] == pytest.approx([50.0, 0.0])
    assert noise["cpu_us_per_request"] == pytest.approx([0.0, -100 * 2 / 9])


def test_the_interval_is_the_mean_with_students_t_over_the_rounds() -> None:
    mean, half = interval([1.0, 2.0, 3.0])
    assert mean == pytest.approx(2.0)
    assert half == pytest.approx(4.30 * 1.0 / math.sqrt(3))  # t(2) = 4.30, stdev 1
    assert interval([5.0] * 20) == pytest.approx((5.0, 0.0))  # past the table: still an interval
