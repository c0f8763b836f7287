"""bench.latency's aggregation and report: partial or failed workloads print, never crash."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from bench import latency, latency_report
from mdgw.config import KafkaConfig
from mdgw.kafka.source import IDLE_FETCH_MIN_BYTES


def side(p50: float, p99: float, delivered: float = 1000.0) -> dict:
    return {
        "age_ms": {"p50": p50, "p99": p99, "p999": p99 * 2},
        "delivered_per_s": delivered,
        "cpu_cores": {"server": 0.5},
        "per_client": {"min": 1, "median": 2, "max": 3},
        "frame_bytes": 330.0,
        "current": 10,
        "told": 0,
        "silent_behind": 0,
    }


def test_diff_is_gateway_minus_floor() -> None:
    assert latency.diff(side(1.0, 5.0), side(1.5, 9.0)) == {"p50": 0.5, "p99": 4.0, "p999": 8.0}
    assert latency.diff(None, side(1.0, 2.0)) == {}


def test_offered_prefers_floor_counters_then_simulator_log() -> None:
    w = latency.Window(10.0, 12.0, {}, counters={"sent": 900, "dropped": 100})
    assert latency.offered(w, 50.0, 1000) == pytest.approx(500.0)
    w = latency.Window(10.0, 12.0, {}, counters={"sent": 900, "dropped": 100, "skipped": 3})
    assert latency.offered(w, 50.0, 900) == pytest.approx(500.0 + 3 * 300 / 2)
    w = latency.Window(10.0, 12.0, {}, feed_log="simulated 91 events in 11.00s (8/s): ...")
    assert latency.offered(w, 10.0, 900) == pytest.approx(91 / 11 * 300)
    assert latency.offered(latency.Window(0, 1, {}), 9.0, 300) == pytest.approx(900.0)


def test_tables_of_a_full_result() -> None:
    res = {
        "capacity": {
            "steps": [
                {
                    "rate": 60.0,
                    "offered_per_s": 2e4,
                    "delivered_per_s": 2e4,
                    "age_ms": {"p50": 1.0, "p99": 5.0, "p999": 9.0},
                    "pass": True,
                }
            ],
            "rate": 60.0,
            "delivered_per_s": 2e4,
            "p99_limit_ms": 50.0,
        },
        "moderate": {"rate": 15.0, "clients": 1000, "floor": side(1, 5), "gateway": side(2, 9)},
        "hops": {
            "kafka": {"count": "n/a", "p50_ms": "n/a", "p99_ms": "n/a", "p999_ms": "n/a"},
            "broadcast": {"count": 5.0, "p50_ms": 1.0, "p99_ms": 2.0, "p999_ms": 2.5},
        },
        "kafka_floor": {
            "rate": 15.0,
            "bare": {"count": 3, "p50_ms": 1.0, "p99_ms": 4.0, "p999_ms": 5.0},
            "gateway_hops": {"kafka": {"count": 3.0, "p50_ms": 2.0, "p99_ms": 9.0, "p999_ms": 9.9}},
            "gateway_age_ms": {"p50": 5.0, "p99": 20.0, "p999": 30.0},
            "gateway_cpu_cores": {"server": 0.5},
        },
        "no_broker": {
            "rate": 15.0,
            "clients": 1000,
            "gateway": side(1.5, 7.0)
            | {"hops": {"fanout": {"count": 9.0, "p50_ms": 1.0, "p99_ms": 4.0, "p999_ms": 5.0}}},
            "diff_ms": {"p50": 0.5, "p99": 2.0, "p999": 4.0},
        },
        "overload": {
            "floor": side(10, 50) | {"rate": 240.0},
            "gateway": side(900, 3000)
            | {
                "rate": 240.0,
                "responsive": {
                    "connect": {"connected": 0, "failed": 1000, "all_connected_s": math.nan},
                    "pings": {"sent": 10, "answered": 3, "p50_ms": 5.0, "p99_ms": 90.0},
                },
            },
        },
        "ingest": {
            "rates": [
                {
                    "rate": 200.0,
                    "records_per_s": 220.0,
                    "gateway_cores": 0.1,
                    "gateway_us_per_record": 450.0,
                }
            ]
        },
        "workers": {"1": side(900, 3000), "2": {"error": "boom"}},
        "kafka_settings": {
            "rate": 15.0,
            "floor": side(1, 5),
            "rows": [
                {
                    "setting": "defaults",
                    "age_ms": {"p50": 2, "p99": 9, "p999": 18},
                    "delivered_per_s": 5.0,
                    "cpu_cores": {"server": 0.1},
                },
                {"setting": "fetch_wait_max_ms=1", "error": "RuntimeError()"},
            ],
        },
    }
    titles = [t.title for t in latency_report.tables(res)]
    assert len(titles) == 10
    assert any(t and "Kafka hop alone" in str(t) for t in titles)
    nb = next(t for t in latency_report.tables(res) if "without Kafka" in str(t.title))
    cells = {c.header: list(c.cells) for c in nb.columns}
    assert cells["gateway, no broker"][:2] == ["1.50", "7.00"]
    assert cells["no broker - floor"][:2] == ["0.50", "2.00"]  # the moderate floor: 1 / 5
    assert cells["gateway, Kafka"][:2] == ["2", "9"]
    assert cells["Kafka - floor"][:2] == ["1", "4"]
    latency_report.print_tables(res)


def test_no_broker_result_is_its_window_beside_the_floor() -> None:
    p = latency.Plan(latency.parse(["--capacity", "60"]), Path("/tmp"), None, capacity=60.0)
    r = latency.no_broker_result(p, side(1, 5), {"": side(1.25, 6)})
    assert r["rate"] == 15.0 and r["clients"] == 1000
    assert r["diff_ms"] == {"p50": 0.25, "p99": 1.0, "p999": 2.0}
    failed = latency.no_broker_result(p, side(1, 5), {"error": "boom"})
    assert failed["gateway"] == {"error": "boom"} and failed["diff_ms"] == {}
    assert latency.no_broker_result(p, None, {"": side(1, 2)})["diff_ms"] == {}


def test_bare_hop_keeps_the_window_and_tells_an_empty_one() -> None:
    samples = [[9.9, 50.0], [10.0, 1.0], [10.5, 2.0], [11.0, 3.0], [11.9, 4.0], [12.0, 60.0]]
    h = latency.bare_hop(samples, 10.0, 12.0)
    assert h["count"] == 4
    assert h["p50_ms"] == pytest.approx(2.5)
    assert h["p99_ms"] == pytest.approx(3.97)
    assert latency.bare_hop(samples, 20.0, 30.0) == {
        "count": 0,
        "p50_ms": "n/a",
        "p99_ms": "n/a",
        "p999_ms": "n/a",
    }


def test_kafka_floor_window_is_shorter_when_quick_and_can_be_off() -> None:
    assert latency.parse([]).kafka_floor_s == 20.0
    assert latency.parse(["--quick"]).kafka_floor_s == 8.0
    assert latency.parse(["--kafka-floor-s", "0"]).kafka_floor_s == 0.0


def test_tables_of_failed_workloads() -> None:
    res = {
        "capacity": {"steps": [], "rate": 0.0},
        "kafka_floor": {"rate": 1.0, "bare": {"count": 0}, "gateway_hops": {}},
        "moderate": {"rate": 1.0, "clients": 1000, "floor": None, "gateway": {"error": "x"}},
        "overload": {"floor": {"error": "x"}, "gateway": None},
        "ingest": {"error": "x"},
        "workers": {"1": None, "2": {"error": "y"}},
        "no_broker": {"rate": 1.0, "clients": 1000, "gateway": {"error": "z"}, "diff_ms": {}},
    }
    assert latency_report.tables(res)
    latency_report.print_tables(res)


def test_ratio_of_missing_values_is_a_dash() -> None:
    assert latency_report.ratio(3.0, 2.0) == "1.50x"
    assert latency_report.ratio(3.0, 0.0) == "-"
    assert latency_report.ratio(math.nan, 2.0) == "-"
    assert latency_report.ratio(None, 2.0) == "-"


def test_only_takes_known_workloads_and_refuses_a_misspelt_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert latency.parse(["--only", "moderate,kafkafed"]).only == ("moderate", "kafkafed")
    assert "kafkafed" in latency.parse([]).only and "kafkafed" in latency.parse(["--quick"]).only
    with pytest.raises(SystemExit) as exc:
        latency.parse(["--only", "moderate,kafkfed"])
    assert exc.value.code == 2
    assert "--only: unknown kafkfed; known: capacity," in capsys.readouterr().err


def test_ingest_fetch_settings_are_chosen_by_name() -> None:
    assert latency.parse([]).ingest_fetch == ["default", "eager", "batched"]
    a = latency.parse(["--ingest-fetch", "default,batched-2ms,batched-10ms"])
    assert a.ingest_fetch == ["default", "batched-2ms", "batched-10ms"]
    gateway, floor = latency.INGEST_FETCH["batched-2ms"]
    assert gateway["MDGW_KAFKA_FETCH_WAIT_MAX_MS"] == floor["MDGW_KAFKA_FETCH_WAIT_MAX_MS"] == 2
    assert gateway["MDGW_KAFKA_IDLE_FETCH_WAIT_MS"] == 0  # measures this fetch, not the idle one
    # with no clients the gateway fetches in bulk: its floor is the loop with that fetch
    gateway, floor = latency.INGEST_FETCH["default"]
    assert gateway == {} and floor["MDGW_KAFKA_FETCH_MIN_BYTES"] == IDLE_FETCH_MIN_BYTES
    assert floor["MDGW_KAFKA_FETCH_WAIT_MAX_MS"] == KafkaConfig().idle_fetch_wait_ms
    with pytest.raises(SystemExit, match="unknown"):
        latency.parse(["--ingest-fetch", "fast"])


def table_rows(t: object) -> dict[str, tuple[str, ...]]:
    """A rich table's rows by their first cell."""
    cols = [list(c.cells) for c in t.columns]  # type: ignore[attr-defined]
    return {row[0]: tuple(row[1:]) for row in zip(*cols, strict=True)}


def test_workers_table_gives_messages_per_client_cpu_second() -> None:
    def run(delivered: float, server: float, clients: float) -> dict[str, object]:
        cores = {"server": server, "clients": clients, "broker": 0.4, "feed": 0.2, "machine": 1.9}
        return side(200, 600) | {"delivered_per_s": delivered, "cpu_cores": cores}

    res = {"workers": {"1": run(250_000, 0.6, 0.75), "2": run(200_000, 0.75, 0.6)}}
    t = next(t for t in latency_report.tables(res) if "--workers 1 vs 2" in str(t.title))
    rows = table_rows(t)
    assert rows["delivered msgs per client CPU-second"] == ("333,333", "333,333", "1.00x")
    assert rows["clients' CPU (cores)"] == ("0.75", "0.60", "0.80x")
    assert rows["broker + feed CPU (cores)"][:2] == ("0.60", "0.60")
    # an older result without the clients' CPU: a dash, not a crash
    res["workers"]["2"]["cpu_cores"] = {"server": 0.7}
    t = next(t for t in latency_report.tables(res) if "--workers 1 vs 2" in str(t.title))
    rows = table_rows(t)
    assert rows["delivered msgs per client CPU-second"][1] == "-"


def test_a_kafka_hop_over_the_whole_budget_is_said() -> None:
    assert latency_report.over_budget({"p50_ms": 1.1, "p99_ms": 7.3}) == (
        "p50 (1.10 > 0.5 ms) and p99 (7.30 > 2 ms)"
    )
    assert latency_report.over_budget({"p50_ms": 0.4, "p99_ms": 2.5}) == "p99 (2.50 > 2 ms)"
    assert latency_report.over_budget({"p50_ms": 0.4, "p99_ms": 1.5}) == ""
    assert latency_report.over_budget({"p50_ms": "n/a", "p99_ms": "n/a"}) == ""
    kf = {"rate": 84.0, "bare": {"count": 9, "p50_ms": 1.1, "p99_ms": 1.9, "p999_ms": 3.0}}
    t = latency_report.kafka_floor_table(kf, {})
    assert str(t.caption).endswith("over target 2's whole budget at p50 (1.10 > 0.5 ms)")
    kf["bare"] = {"count": 0, "p50_ms": "n/a", "p99_ms": "n/a", "p999_ms": "n/a"}
    assert "budget" not in str(latency_report.kafka_floor_table(kf, {}).caption)


def test_the_report_renders_a_named_result_and_refuses_a_bad_one(tmp_path: Path) -> None:
    res = {"workers": {"1": side(200, 600), "2": side(210, 700)}}
    good = tmp_path / "run.json"
    good.write_text(json.dumps(res))
    out = subprocess.run(
        [sys.executable, "-m", "bench.latency_report", str(good)], capture_output=True, timeout=120
    )
    assert out.returncode == 0, out.stderr.decode()
    assert b"--workers 1 vs 2" in out.stdout
    if importlib.util.find_spec("matplotlib") is None:  # the bench extra is not installed
        assert b"no plot (run.png): matplotlib is not installed" in out.stderr
    else:
        assert (tmp_path / "run.png").exists()
    (tmp_path / "list.json").write_text("[1, 2]")
    for bad, says in (
        (tmp_path / "missing.json", b"cannot read"),
        (tmp_path / "list.json", b"is not a bench.latency result"),
    ):
        out = subprocess.run(
            [sys.executable, "-m", "bench.latency_report", str(bad)],
            capture_output=True,
            timeout=60,
        )
        assert out.returncode == 2 and says in out.stderr


def test_the_kafka_fed_floor_is_set_beside_the_floor_and_the_gateway() -> None:
    p = latency.Plan(latency.parse(["--capacity", "60"]), Path("/tmp"), None, capacity=60.0)
    r = latency.kafka_fed_result(p, side(1.0, 5.0), side(2.0, 8.0), side(3.0, 9.0))
    assert r["rate"] == 15.0 and r["clients"] == 1000
    assert r["kafka_minus_floor"] == {"p50": 1.0, "p99": 3.0, "p999": 6.0}
    assert r["diff_ms"] == {"p50": 1.0, "p99": 1.0, "p999": 2.0}  # gateway - Kafka-fed floor
    failed = latency.kafka_fed_result(p, side(1.0, 5.0), {"error": "boom"}, side(3.0, 9.0))
    assert failed["kafka_minus_floor"] == {} and failed["diff_ms"] == {}
    assert latency.kafka_fed_result(p, None, side(2.0, 8.0), None)["diff_ms"] == {}

    moderate = {"floor": side(1.0, 5.0), "gateway": side(3.0, 9.0)}
    t = latency_report.kafka_fed_table(r, moderate)
    rows = table_rows(t)
    assert rows["age p50 (ms)"] == ("1.00", "2.00", "1.00", "3.00", "1.00")
    assert rows["age p99 (ms)"] == ("5.00", "8.00", "3.00", "9.00", "1.00")
    assert str(t.caption).endswith("over target 2's budget at p50 +1.00 > 0.5 ms")
    within = latency.kafka_fed_result(p, side(1.0, 5.0), side(2.0, 8.0), side(2.25, 9.0))
    caption = str(latency_report.kafka_fed_table(within, moderate).caption)
    assert caption.endswith("within target 2's budget")
    # a failed window prints its error, and every table of the result still renders
    res = {
        "kafka_fed": failed | {"kafka_fed": {"error": "boom"}},
        "moderate": moderate | {"rate": 15.0, "clients": 1000},
    }
    t = next(t for t in latency_report.tables(res) if str(t.title).startswith("3d."))
    assert table_rows(t)["error"][1] == "boom"
    latency_report.print_tables(res)


def test_a_run_without_moderate_still_shows_the_floors_moderate_window() -> None:
    # --only nobroker: the floor's moderate window is measured (capacity holds it)
    res = {
        "capacity": {"steps": [], "rate": 60.0, "moderate": side(1.0, 5.0)},
        "moderate": None,
        "no_broker": {"rate": 15.0, "clients": 1000, "gateway": side(1.5, 6.0), "diff_ms": {}},
    }
    t = next(t for t in latency_report.tables(res) if str(t.title).startswith("3c."))
    assert table_rows(t)["age p50 (ms)"][:3] == ("1.00", "1.50", "0.50")


def test_the_first_rounds_workloads_refuse_a_misspelt_name_too(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from bench import run

    assert run.parse(["--only", "w1,w5"]).only == "w1,w5"
    with pytest.raises(SystemExit) as exc:
        run.parse(["--only", "w1,w6"])
    assert exc.value.code == 2
    assert "--only: unknown w6; known: w5, w4, w1, w2, w3, ref" in capsys.readouterr().err
