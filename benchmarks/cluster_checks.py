"""The pure checks of the scale-out run (`benchmarks/cluster.py`), kept apart so they are unit
tested (tests/test_cluster_checks.py) and import nothing but the standard library.

Every function takes what the run recorded (timestamps, statuses, samples) and returns figures
plus a list of problems; an empty list means the check passed.
"""

from __future__ import annotations

import bisect
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

__all__ = [
    "RateCheck",
    "Window",
    "applied_once",
    "check_rate",
    "errors_outside",
    "max_in_window",
    "per_minute",
    "percentile",
    "replace_block",
    "rss_growth",
]


def max_in_window(times: Iterable[float], window: float) -> int:
    """The most events that fall in any half-open interval [t, t + window).

    Sliding, not aligned to fixed windows: the worst case over every possible start, which is
    what an upstream with its own (differently aligned) window may see.
    """
    ordered = sorted(times)
    best = 0
    for index, start in enumerate(ordered):
        end = bisect.bisect_left(ordered, start + window, lo=index)
        best = max(best, end - index)
    return best


@dataclass(frozen=True)
class RateCheck:
    name: str
    requests: int
    worst: int  # most requests in any window of `period` seconds
    allowed: float
    period: float

    @property
    def ok(self) -> bool:
        return self.worst <= self.allowed


def check_rate(
    name: str, times: Sequence[float], count: float, period: float, burst: float
) -> RateCheck:
    """A token bucket of `burst` tokens refilled at count/period lets any window of `period`
    seconds see at most burst + count requests (the bound the engine's limits promise)."""
    return RateCheck(name, len(times), max_in_window(times, period), count + burst, period)


@dataclass(frozen=True)
class Window:
    """A documented interval in which some 5xx answers are expected: any of them (`kinds` and
    `codes` empty, e.g. around an instance kill), or only those of some request kinds with
    some error codes (e.g. 503 `upstream_unavailable` for views while the upstream is down)."""

    name: str
    start: float
    end: float
    kinds: frozenset[str] = frozenset()
    codes: frozenset[str] = frozenset()

    def covers(self, t: float, seconds: float, kind: str = "", code: str | None = None) -> bool:
        """Does it excuse an answer to a request in flight from t to t + seconds?"""
        if t > self.end or t + seconds < self.start:
            return False
        if self.kinds and kind not in self.kinds:
            return False
        return not self.codes or code in self.codes


def errors_outside(
    answers: Iterable[tuple[float, float, int, str, str | None]], windows: Sequence[Window]
) -> tuple[dict[str, int], list[tuple[float, float, int, str, str | None]]]:
    """5xx answers per window that excuses them, and the ones no window excuses.

    `answers`: (start, seconds until the answer, status, request kind, error code); a window
    excuses a request that was in flight at any moment of it (one sent just before an
    instance was killed fails with it). Status 0 = no answer at all (connection failed,
    timeout): counted like a 5xx, a client would see an error.
    """
    inside: dict[str, int] = {}
    outside: list[tuple[float, float, int, str, str | None]] = []
    for t, seconds, status, kind, code in answers:
        if status == 0 or status >= 500:
            window = next((w for w in windows if w.covers(t, seconds, kind, code)), None)
            if window is None:
                outside.append((t, seconds, status, kind, code))
            else:
                inside[window.name] = inside.get(window.name, 0) + 1
    return inside, outside


def applied_once(
    sent: Mapping[str, Sequence[str]],
    writes: Iterable[tuple[str, str]],
    final: Mapping[str, str | None],
) -> tuple[dict[str, int], list[str]]:
    """Exactly-once for "set field X of target T to V" changes.

    `sent`: per target, the values accepted from clients, in the order they were sent (every
    value unique). `writes`: (target, value) for every write the upstream itself applied.
    `final`: the upstream's value per target at the end.

    A queued change may be replaced by a newer one for the same target before it runs (latest
    value wins), so an older value may never be written (superseded). Problems: a value written
    twice, a write of a value nobody sent, a target whose final value is not the last one sent,
    and a last value that was never written.
    """
    problems: list[str] = []
    counts: dict[tuple[str, str], int] = {}
    for target, value in writes:
        counts[(target, value)] = counts.get((target, value), 0) + 1
    known = {(target, value) for target, values in sent.items() for value in values}
    for (target, value), n in sorted(counts.items()):
        if (target, value) not in known:
            problems.append(f"{target}: {value!r} written but never sent")
        elif n > 1:
            problems.append(f"{target}: {value!r} written {n} times")
    figures = {"targets": 0, "sent": 0, "written": 0, "superseded": 0, "twice": 0}
    for target, values in sent.items():
        if not values:
            continue
        figures["targets"] += 1
        figures["sent"] += len(values)
        last = values[-1]
        if final.get(target) != last:
            problems.append(f"{target}: ends at {final.get(target)!r}, last sent {last!r}")
        if counts.get((target, last), 0) == 0:
            problems.append(f"{target}: the last value {last!r} was never written")
        for value in values:
            n = counts.get((target, value), 0)
            figures["written"] += min(n, 1)
            figures["twice"] += n > 1
            figures["superseded"] += n == 0 and value != last
    return figures, problems


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None without values."""
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[index]


def rss_growth(
    samples: Sequence[tuple[float, float]], settle: float, tail: float
) -> tuple[float, float] | None:
    """(median RSS just after `settle` seconds from the first sample, median RSS of the last
    `tail` seconds); None when the series is too short to say.

    Medians of windows, not single samples: RSS steps with allocator arenas and collections.
    """
    if len(samples) < 4:
        return None
    first, last = samples[0][0], samples[-1][0]
    if last - first < settle + tail:
        return None
    early = [v for t, v in samples if first + settle <= t < first + settle + tail]
    late = [v for t, v in samples if t >= last - tail]
    if not early or not late:
        return None
    return statistics.median(early), statistics.median(late)


def per_minute(events: Iterable[tuple[float, float]], start: float) -> dict[int, list[float]]:
    """Group (t, value) by whole minutes since `start` (minute 0 = the first)."""
    grouped: dict[int, list[float]] = {}
    for t, value in events:
        grouped.setdefault(int((t - start) // 60), []).append(value)
    return grouped


SECTION = "## Scale-out"


def replace_block(document: str, heading: str, block: str) -> str:
    """`document` with the `### heading` subsection of its "## Scale-out" section replaced by
    `block` (which starts with that heading), adding the section or the subsection at the end
    when missing; everything else is left as it was (`make bench` writes the rest)."""
    lines = document.rstrip("\n").split("\n")
    if SECTION not in lines:
        intro = [
            SECTION,
            "",
            "`make cluster-test` and `make cluster-soak` (docs/cluster.md): three instances "
            "behind a load balancer, one PostgreSQL, one Redis, load and faults.",
        ]
        lines += ["", *intro]
    start = lines.index(SECTION)
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    section = lines[start:end]
    if heading in section:
        first = section.index(heading)
        last = next(
            (i for i in range(first + 1, len(section)) if section[i].startswith("### ")),
            len(section),
        )
        section = section[:first] + block.rstrip("\n").split("\n") + [""] + section[last:]
    else:
        section = [*section, "", *block.rstrip("\n").split("\n"), ""]
    while section and section[-1] == "":
        section.pop()
    rest = lines[end:]
    return "\n".join(lines[:start] + section + (["", *rest] if rest else [])) + "\n"
