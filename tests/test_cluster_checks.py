"""The pure checks behind `make cluster-test` (benchmarks/cluster_checks.py)."""

from __future__ import annotations

from benchmarks.cluster_checks import (
    Window,
    applied_once,
    check_rate,
    errors_outside,
    max_in_window,
    per_minute,
    percentile,
    replace_block,
    rss_growth,
)


def test_max_in_window_slides_instead_of_using_fixed_windows() -> None:
    # Fixed one-second windows starting at 0 would see 2 + 2; a window from 0.6 sees all four.
    times = [0.1, 0.6, 0.9, 1.1, 1.5]
    assert max_in_window(times, 1.0) == 4
    assert max_in_window(times, 0.3) == 2
    assert max_in_window([], 1.0) == 0


def test_max_in_window_is_half_open() -> None:
    # An event exactly one window later belongs to the next window.
    assert max_in_window([0.0, 1.0, 2.0], 1.0) == 1
    assert max_in_window([0.0, 0.999, 2.0], 1.0) == 2


def test_check_rate_allows_the_bucket_plus_one_period_of_refill() -> None:
    # 5/s with a burst of 1: any one-second window may hold 6 requests, not 7.
    six = [10 + i * 0.15 for i in range(6)]
    assert check_rate("ct", six, 5, 1.0, 1).ok
    seven = [10 + i * 0.14 for i in range(7)]
    result = check_rate("ct", seven, 5, 1.0, 1)
    assert not result.ok
    assert (result.worst, result.allowed, result.requests) == (7, 6, 7)


def test_errors_outside_the_documented_windows() -> None:
    answers = [
        (1.0, 0.1, 200, "panels", None),
        (2.0, 0.1, 502, "panels", None),
        (2.5, 0.1, 0, "webhook", None),
        (1.2, 0.5, 502, "events", None),  # sent before the kill, still in flight at 1.5
        (1.0, 0.4, 502, "events", None),  # answered before the window began
        (5.0, 0.1, 503, "panels", "upstream_unavailable"),
        (6.0, 0.1, 429, "panels", "too_many_requests"),  # not a server error
        (7.0, 0.1, 500, "panels", "internal_error"),
        (10.0, 0.1, 503, "panels", "upstream_unavailable"),
        (10.5, 0.1, 503, "events", "upstream_unavailable"),  # not a kind the window excuses
        (11.0, 0.1, 500, "panels", "internal_error"),  # not a code the window excuses
    ]
    windows = [
        Window("kill", 1.5, 3.0),
        Window("outage", 9.0, 12.0, frozenset({"panels"}), frozenset({"upstream_unavailable"})),
    ]
    inside, outside = errors_outside(answers, windows)
    assert inside == {"kill": 3, "outage": 1}
    assert [(t, status) for t, _, status, _, _ in outside] == [
        (1.0, 502),
        (5.0, 503),
        (7.0, 500),
        (10.5, 503),
        (11.0, 500),
    ]


def test_applied_once_accepts_superseded_values_and_the_last_one_written_once() -> None:
    sent = {"o1": ["a", "b", "c"], "o2": ["x"]}
    writes = [("o1", "a"), ("o1", "c"), ("o2", "x")]
    figures, problems = applied_once(sent, writes, {"o1": "c", "o2": "x"})
    assert problems == []
    assert figures == {"targets": 2, "sent": 4, "written": 3, "superseded": 1, "twice": 0}


def test_applied_once_reports_every_kind_of_violation() -> None:
    sent = {"o1": ["a", "b"], "o2": ["x", "y"]}
    writes = [("o1", "a"), ("o1", "a"), ("o1", "b"), ("o2", "x"), ("o2", "zz")]
    figures, problems = applied_once(sent, writes, {"o1": "b", "o2": "x"})
    assert figures["twice"] == 1
    assert "o1: 'a' written 2 times" in problems
    assert "o2: 'zz' written but never sent" in problems
    assert "o2: ends at 'x', last sent 'y'" in problems
    assert "o2: the last value 'y' was never written" in problems
    assert len(problems) == 4


def test_percentile_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile([], 99) is None


def test_rss_growth_compares_medians_after_settling_with_the_tail() -> None:
    samples = [(float(t), 100.0 + (30.0 if t >= 50 else 0.0)) for t in range(0, 62, 2)]
    samples[6] = (12.0, 500.0)  # one spike does not move a median
    assert rss_growth(samples, settle=10, tail=10) == (100.0, 130.0)
    assert rss_growth(samples[:3], settle=10, tail=10) is None
    assert rss_growth(samples[:8], settle=10, tail=10) is None  # too short to compare


def test_per_minute_groups_by_whole_minutes_from_the_start() -> None:
    grouped = per_minute([(100.0, 1.0), (159.9, 2.0), (160.0, 3.0), (290.0, 4.0)], 100.0)
    assert grouped == {0: [1.0, 2.0], 1: [3.0], 3: [4.0]}


def test_replace_block_adds_the_section_then_replaces_only_its_own_subsection() -> None:
    top = "# Benchmarks\n\n## Sync engine\n\nfigures\n"
    once = replace_block(top, "### Run", "### Run\n\nfirst")
    assert once.startswith(top.rstrip("\n") + "\n\n## Scale-out\n")
    assert once.endswith("### Run\n\nfirst\n")
    soak = replace_block(once, "### Soak", "### Soak\n\nminutes")
    again = replace_block(soak, "### Run", "### Run\n\nsecond")
    assert "first" not in again
    assert again.index("### Run\n\nsecond") < again.index("### Soak\n\nminutes")
    assert again.startswith(top.rstrip("\n"))
    # A section followed by another one keeps that one after it.
    later = again + "\n## Later\n\ntext\n"
    assert replace_block(later, "### Run", "### Run\n\nthird").endswith("## Later\n\ntext\n")
