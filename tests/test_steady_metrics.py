"""The calibration's steadiness metrics (sim.runs.output): a stock's RMS deviation from its start and a flow's drift,
as counts and per head (a population that grows carries its flows and stocks with it)."""

import numpy as np
import pytest

from sim.runs.output import flow_drift, stock_rms_deviation


def test_a_stock_that_grows_with_its_heads_is_steady_per_head_only():
    months = np.arange(24)
    heads = 1000 * 1.01 ** months  # +1% a month
    stock = 50 * 1.01 ** months  # the same rate per head
    assert stock_rms_deviation(stock, 50.0, heads) == pytest.approx(0.0, abs=1e-12)
    # as a count, years 1 and 2 are about 5.8% and 19.2% above the start: RMS about 0.142
    assert stock_rms_deviation(stock, 50.0) == pytest.approx(0.142, abs=0.002)


def test_a_stock_that_falls_per_head_is_read_as_falling():
    heads = np.full(24, 1000.0)
    heads[12:] = 1250.0  # the people grow by a quarter in year 2, the stock does not
    stock = np.full(24, 40.0)
    assert stock_rms_deviation(stock, 40.0) == 0.0
    assert stock_rms_deviation(stock, 40.0, heads) == pytest.approx(np.sqrt((0 + 0.2 ** 2) / 2))


def test_a_flow_s_drift_per_head_and_as_a_count():
    flow = np.r_[np.full(12, 10.0), np.full(12, 12.0)]  # +20% in year 2
    assert flow_drift(flow) == pytest.approx(1.2)
    assert flow_drift(flow, np.r_[np.full(12, 100.0), np.full(12, 120.0)]) == pytest.approx(1.0)
    assert np.isnan(flow_drift(flow[:20])) and np.isnan(stock_rms_deviation(np.array([]), 1.0))
