"""The pure parts of bench.latency: histograms, percentiles, /metrics parsing, windows."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as hs

from bench import latency_stats as st


@given(hs.integers(min_value=0, max_value=10**10))
def test_bucket_holds_its_value_within_3_percent(us: int) -> None:
    lo, hi = st.bucket_bounds(st.bucket(us))
    assert lo <= us < hi
    assert hi - lo <= max(1, lo / 32)


@given(hs.integers(min_value=0, max_value=10**9), hs.integers(min_value=0, max_value=10**9))
def test_buckets_are_ordered_like_values(a: int, b: int) -> None:
    if a <= b:
        assert st.bucket(a) <= st.bucket(b)


def test_bucket_is_exact_below_64_us_and_clamps_negatives() -> None:
    assert [st.bucket(v) for v in (0, 1, 63)] == [0, 1, 63]
    assert st.bucket(-5) == 0
    assert st.bucket_bounds(64) == (64, 66)


def test_hist_percentile_interpolates_inside_exact_buckets() -> None:
    counts = [0] * 11
    for v in range(1, 11):  # one value each of 1..10 µs
        counts[v] = 1
    assert st.hist_percentile(counts, 0.5) == pytest.approx(6.0)  # rank 5 ends bucket 5
    assert st.hist_percentile(counts, 1.0) == pytest.approx(11.0)
    assert math.isnan(st.hist_percentile([0, 0], 0.5))


def test_hist_percentile_matches_raw_percentiles_within_resolution() -> None:
    values = [int(1.37**k) % 50_000 + 100 for k in range(2000)]
    counts: list[int] = []
    for v in values:
        b = st.bucket(v)
        if b >= len(counts):
            counts.extend([0] * (b + 1 - len(counts)))
        counts[b] += 1
    for q in (0.5, 0.9, 0.99):
        raw = st.percentile(values, q)
        assert st.hist_percentile(counts, q) == pytest.approx(raw, rel=0.04)


def test_percentile_of_raw_values() -> None:
    assert st.percentile([3.0, 1.0, 2.0, 4.0], 0.5) == pytest.approx(2.5)
    assert st.percentile([5.0], 0.99) == 5.0
    assert math.isnan(st.percentile([], 0.5))


def test_add_counts_grows() -> None:
    assert st.add_counts([1, 2], [0, 1, 5]) == [1, 3, 5]


METRICS_0 = """\
# HELP gateway_hop_seconds per hop
# TYPE gateway_hop_seconds histogram
gateway_hop_seconds_bucket{hop="kafka",le="0.001"} 10.0
gateway_hop_seconds_bucket{hop="kafka",le="0.01"} 20.0
gateway_hop_seconds_bucket{hop="kafka",le="+Inf"} 20.0
gateway_hop_seconds_bucket{hop="apply",le="0.001"} 5.0
gateway_hop_seconds_bucket{hop="apply",le="0.01"} 5.0
gateway_hop_seconds_bucket{hop="apply",le="+Inf"} 5.0
kafka_records_consumed_total{topic="a.book"} 100.0
kafka_records_consumed_total{topic="a.trades"} 7.0
"""
METRICS_1 = """\
gateway_hop_seconds_bucket{hop="kafka",le="0.001"} 10.0
gateway_hop_seconds_bucket{hop="kafka",le="0.01"} 120.0
gateway_hop_seconds_bucket{hop="kafka",le="+Inf"} 120.0
gateway_hop_seconds_bucket{hop="apply",le="0.001"} 1005.0
gateway_hop_seconds_bucket{hop="apply",le="0.01"} 1005.0
gateway_hop_seconds_bucket{hop="apply",le="+Inf"} 1005.0
kafka_records_consumed_total{topic="a.book"} 300.0
kafka_records_consumed_total{topic="a.trades"} 17.0
"""


def test_prom_histogram_selects_a_label_and_deltas_interpolate() -> None:
    h0 = st.prom_histogram(METRICS_0, "gateway_hop_seconds", hop="kafka")
    h1 = st.prom_histogram(METRICS_1, "gateway_hop_seconds", hop="kafka")
    assert h1 == {0.001: 10.0, 0.01: 120.0, math.inf: 120.0}
    d = st.hist_delta(h1, h0)
    assert d == {0.001: 0.0, 0.01: 100.0, math.inf: 100.0}
    # all 100 new observations lie in (1 ms, 10 ms]: the median is the bucket's middle
    assert st.prom_quantile(d, 0.5) == pytest.approx(0.0055)
    assert st.prom_quantile(d, 0.99) == pytest.approx(0.00991)


def test_prom_quantile_in_the_inf_bucket_answers_the_top_bound() -> None:
    assert st.prom_quantile({1.0: 0.0, math.inf: 4.0}, 0.5) == 1.0
    assert math.isnan(st.prom_quantile({}, 0.5))
    assert math.isnan(st.prom_quantile({1.0: 0.0, math.inf: 0.0}, 0.5))


def test_hop_summary_absent_metric_is_na_never_an_error() -> None:
    s = st.hop_summary(METRICS_0, METRICS_1, "gateway_hop_seconds", hop="handoff")
    assert s == {"count": "n/a", "p50_ms": "n/a", "p99_ms": "n/a", "p999_ms": "n/a"}
    a = st.hop_summary(METRICS_0, METRICS_1, "gateway_hop_seconds", hop="apply")
    assert a["count"] == 1000.0
    assert a["p50_ms"] == pytest.approx(0.5)
    quiet = st.hop_summary(METRICS_1, METRICS_1, "gateway_hop_seconds", hop="apply")
    assert quiet["count"] == 0.0 and quiet["p99_ms"] == "n/a"


def test_prom_sum_over_labels() -> None:
    assert st.prom_sum(METRICS_1, "kafka_records_consumed_total") == 317.0
    assert st.prom_sum(METRICS_1, "kafka_records_consumed_total", topic="a.book") == 300.0
    assert st.prom_sum(METRICS_1, "no_such_metric") is None


def hist_of(*ages_us: int) -> list[int]:
    counts: list[int] = []
    for a in ages_us:
        b = st.bucket(a)
        if b >= len(counts):
            counts.extend([0] * (b + 1 - len(counts)))
        counts[b] += 1
    return counts


def proc_result(base: int) -> dict:
    """Four clients over seconds base..base+4: current, resynced, closed 1013, silent."""
    s = 1_000_000_000
    return {
        "clients": 5,
        "t0_s": base,
        "first_attempt_ns": base * s,
        "hist": {"1": hist_of(1000, 2000), "2": hist_of(3000), "9": hist_of(10**6)},
        "per_client": {
            "counts": [[0, 5, 5, 5, 5], [0, 2, 2, 0, 0], [0, 9, 9, 9, 9], [0, 1, 1, 1, 1], []],
            "max_age_ms": [
                [0, 3, 3, 3, 3],
                [0, 900, 2500, 0, 0],
                [0, 9, 3000, 9, 9],
                [0, 2000, 2000, 2000, 2000],
                [],
            ],
            "resync_ns": [[], [(base + 2) * s], [], [], []],
            "close": [None, None, (1013, (base + 3) * s), None, None],
            "connected_ns": [base * s, base * s, base * s, base * s, 0],
            "connect_ms": [1.0, 1.0, 1.0, 1.0, -1],
        },
        "pings": {
            "sent_ns": [(base + 1) * s, (base + 2) * s, (base + 9) * s],
            "rtt_us": [2000, -1, 5000],
        },
    }


def test_window_spread_and_who_was_told() -> None:
    r = proc_result(1000)
    w = st.window([r, {"error": "lost"}], 1000.5, 1005.0)  # whole seconds 1001..1004
    assert w["seconds"] == 4
    assert w["clients"] == 4  # the unconnected one is not counted
    assert w["per_client"] == {"min": 4, "median": 20, "max": 36}
    assert w["book_messages"] == 4 + 20 + 36 + 4
    assert w["delivered_per_s"] == pytest.approx(64 / 4)
    assert (w["current"], w["told"], w["silent_behind"]) == (1, 2, 1)
    assert w["closes"] == {"1013": 1}
    assert w["resync_messages"] == 1
    assert w["age_ms"]["p50"] == pytest.approx(2.0, rel=0.04)  # 1, 2, 3 ms (10 s is outside)


def test_window_of_nothing_is_nan_not_an_error() -> None:
    w = st.window([], 0.0, 10.0)
    assert w["clients"] == 0 and math.isnan(w["age_ms"]["p99"])


def test_pings_and_connects() -> None:
    r = proc_result(2000)
    p = st.pings([r], 2000.0, 2005.0)
    assert (p["sent"], p["answered"]) == (2, 1)
    assert p["p99_ms"] == pytest.approx(2.0)
    assert [ms for _, ms in p["slow"]] == [pytest.approx(2.0)]  # when sent, and how slow
    c = st.connects([r, {"error": "x"}])
    assert (c["connected"], c["failed"]) == (4, 1)
    c = st.connects([r, {"error": "never reported", "clients": 500}])
    assert (c["connected"], c["failed"]) == (4, 501)
    assert c["all_connected_s"] == pytest.approx(0.0)


def test_window_seconds_of_an_aligned_window_keep_its_first_second() -> None:
    assert st.window_seconds(1000.004, 1004.006) == range(1000, 1004)
    assert st.window_seconds(1000.5, 1005.0) == range(1001, 1005)


def test_told_behind_in_the_window_or_just_before_it_is_not_silent() -> None:
    s = 1_000_000_000
    r = proc_result(1000)
    r["per_client"]["behind_ns"] = [[], [], [], [(1000 - 4) * s], []]  # the silent one, told
    w = st.window([r], 1000.5, 1005.0)
    assert (w["current"], w["told"], w["silent_behind"]) == (1, 3, 0)
    assert w["clients_told_behind"] == 0  # told before the window, not in it
    r["per_client"]["behind_ns"][3] = [(1000 - 6) * s]  # an episode long over: silent again
    assert st.window([r], 1000.5, 1005.0)["silent_behind"] == 1
    r["per_client"]["behind_ns"][3] = [(1000 + 2) * s]
    assert st.window([r], 1000.5, 1005.0)["clients_told_behind"] == 1


def test_fair_share_is_judged_among_clients_offered_the_same() -> None:
    # group 0 streams are twice as busy as group 1's: every client got its group's
    # median, so the share is fair although the raw counts differ 2x
    served = [(0, t, 200) for t in range(0, 10, 2)] + [(1, t, 100) for t in range(1, 10, 2)]
    f = st.fair_share(served)
    assert f["per_group"]["0"] == {"clients": 5, "min": 200, "median": 200, "max": 200}
    assert f["per_group"]["1"]["median"] == 100
    assert f["share"] == {"min": 1.0, "median": 1.0, "max": 1.0}
    assert f["share_by_connect_order"] == [1.0] * 5


def test_fair_share_shows_first_come_service() -> None:
    # one group; the first connected got 4x what the last did
    served = [(0, t, 400 - 30 * t) for t in range(10)]
    f = st.fair_share(served)
    order = f["share_by_connect_order"]
    assert order == sorted(order, reverse=True) and order[0] > 2 * order[-1]
    assert f["share"]["max"] == pytest.approx(400 / 280, abs=1e-3)  # the upper median of 10
    assert f["share"]["min"] == pytest.approx(130 / 280, abs=1e-3)


def test_fair_share_of_nobody_and_of_old_results_without_groups() -> None:
    assert st.fair_share([])["share"] == {}
    r = proc_result(1000)  # written before clients recorded their group: all in one
    w = st.window([r], 1000.5, 1005.0)
    assert w["per_group"]["0"] == {"clients": 4, "min": 4, "median": 20, "max": 36}
    assert w["share"]["max"] == pytest.approx(36 / 20, abs=1e-3)


def test_observe_counts_into_a_list_that_grows_and_hist_ms_reads_it_back() -> None:
    counts: list[int] = []
    for us in (5, 5, 1_000, 250_000, -3):
        st.observe(counts, us)
    assert sum(counts) == 5 and counts[5] == 2 and counts[0] == 1  # negatives count as 0
    assert len(counts) == st.bucket(250_000) + 1
    ms = st.hist_ms(counts)
    assert set(ms) == {"p50", "p99", "p999"}
    assert 0.005 <= ms["p50"] <= 0.006  # the third of five: 5 µs
    assert 240 <= ms["p999"] <= 260  # the largest, within the bucket's 3 %
