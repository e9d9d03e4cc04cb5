"""AGP numbers against fixtures whose expected values are worked out by hand below."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gateway.agp import range_of, summarise, weights

T0 = datetime(2026, 11, 1, tzinfo=UTC)
M5 = timedelta(minutes=5)


def test_range_boundaries_follow_the_consensus() -> None:
    assert [range_of(v) for v in (53.9, 54, 69.9, 70, 180, 180.1, 250, 250.1)] == [
        "very_low",
        "low",
        "low",
        "in_range",
        "in_range",
        "high",
        "high",
        "very_high",
    ]


def test_weights_cap_gaps_and_give_the_last_reading_one_interval() -> None:
    times = [T0, T0 + M5, T0 + timedelta(hours=1)]
    # 5 min to the next; 55 min gap capped at 15 min; last one 5 min.
    assert weights(times, T0 + timedelta(days=1)) == [300.0, 900.0, 300.0]


def test_one_hour_fixture() -> None:
    # 12 readings every 5 minutes over one hour [T0, T0+1h):
    #   6 readings at 100, 3 at 60, 2 at 200, 1 at 300; each stands for 5 minutes
    #   (the last one for 5 minutes too, ending exactly at T0+1h).
    # covered = 60 min = 100 % active.
    # mean = (6*100 + 3*60 + 2*200 + 300) / 12 = (600+180+400+300)/12 = 1480/12 = 123.333
    # variance = sum((v-mean)^2)/12:
    #   6*(100-123.333)^2 = 6*544.444 = 3266.667
    #   3*(60-123.333)^2  = 3*4011.111 = 12033.333
    #   2*(200-123.333)^2 = 2*5877.778 = 11755.556
    #   1*(300-123.333)^2 = 31211.111
    #   total 58266.667 / 12 = 4855.556 -> SD 69.682 -> CV 69.682/123.333 = 56.5 %
    # GMI = 3.31 + 0.02392*123.333 = 3.31 + 2.950 = 6.26 -> 6.3
    # time in ranges: low 3/12 = 25 %, in range 6/12 = 50 %, high 2/12 = 16.7 %,
    # very high 1/12 = 8.3 %, very low 0.
    values = [100] * 6 + [60] * 3 + [200] * 2 + [300]
    points = [(T0 + i * M5, float(v)) for i, v in enumerate(values)]
    s = summarise(points, T0, T0 + timedelta(hours=1))
    assert s.readings == 12
    assert s.active_pct == 100.0
    assert s.mean_mg_dl == 123.3
    assert s.sd_mg_dl == 69.7
    assert s.cv_pct == 56.5
    assert s.gmi_pct == 6.3
    assert s.time_in_ranges_pct == {
        "very_low": 0.0,
        "low": 25.0,
        "in_range": 50.0,
        "high": 16.7,
        "very_high": 8.3,
    }


def test_time_weighting_and_gmi_needs_70_percent_coverage() -> None:
    # Period 2 h. Readings: 50 at T0, 150 at T0+5min, then nothing (sensor off).
    # Weights: 5 min (to the next) and 5 min (last one) -> covered 10 min of 120 = 8.33 %.
    # mean = (50*5 + 150*5)/10 = 100; very low 50 %, in range 50 %. GMI withheld (< 70 %).
    s = summarise([(T0, 50.0), (T0 + M5, 150.0)], T0, T0 + timedelta(hours=2))
    assert s.active_pct == 8.33
    assert s.mean_mg_dl == 100.0
    assert s.gmi_pct is None
    assert s.time_in_ranges_pct["very_low"] == 50.0
    assert s.time_in_ranges_pct["in_range"] == 50.0
    # Unequal intervals weigh by time: 80 for 15 min (a capped 40-min gap), 200 for 5 min.
    # mean = (80*15 + 200*5)/20 = (1200+1000)/20 = 110.
    s2 = summarise([(T0, 80.0), (T0 + timedelta(minutes=40), 200.0)], T0, T0 + timedelta(hours=1))
    assert s2.mean_mg_dl == 110.0
    assert s2.time_in_ranges_pct["in_range"] == 75.0


def test_no_data() -> None:
    s = summarise([], T0, T0 + timedelta(days=14))
    assert (s.readings, s.active_pct, s.mean_mg_dl, s.gmi_pct) == (0, 0.0, None, None)
