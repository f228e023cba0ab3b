"""The service's counters and histograms, written in the Prometheus text format (no dependency).

Where it sits: service → **metrics** → ``GET /metrics``. Figures are per worker process (each
worker answers a scrape with its own; the ``pid`` label of ``nextchannel_worker_info`` tells them
apart). Label values are action names, fallback reasons and model versions — never ids.
"""

from __future__ import annotations

import bisect
import os
import threading
from collections import Counter
from typing import Iterable

__all__ = ["Metrics", "LATENCY_BUCKETS_S"]

#: Upper bounds (seconds) of the latency histograms' buckets.
LATENCY_BUCKETS_S: tuple[float, ...] = (0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                        0.5, 1.0, 2.5)


class _Histogram:
    def __init__(self, buckets: Iterable[float]) -> None:
        self.buckets = tuple(buckets)
        self.counts = [0] * (len(self.buckets) + 1)
        self.sum = 0.0
        self.n = 0

    def observe(self, x: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, x)] += 1
        self.sum += x
        self.n += 1

    def lines(self, name: str, labels: str = "") -> list[str]:
        out, acc = [], 0
        sep = "," if labels else ""
        for le, c in zip(self.buckets, self.counts):
            acc += c
            out.append(f'{name}_bucket{{{labels}{sep}le="{le:g}"}} {acc}')
        out.append(f'{name}_bucket{{{labels}{sep}le="+Inf"}} {self.n}')
        lab = f"{{{labels}}}" if labels else ""
        out += [f"{name}_sum{lab} {self.sum!r}", f"{name}_count{lab} {self.n}"]
        return out


def _esc(v: str) -> str:
    return str(v).replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")


class Metrics:
    """Counters and latency histograms of one worker.

    Examples
    --------
    >>> m = Metrics()
    >>> m.decision("chat", None, 0.002, 0.0004)
    >>> m.decision("none", "malformed signals", 0.001, 0.0002)
    >>> text = m.render("v1", {"sessions": 2.0})
    >>> 'nextchannel_decisions_total{action="chat"} 1' in text
    True
    >>> 'nextchannel_fallbacks_total{reason="malformed signals"} 1' in text
    True
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.decisions: Counter[str] = Counter()
        self.fallbacks: Counter[str] = Counter()
        self.bad_requests: Counter[str] = Counter()
        self.outcomes: Counter[str] = Counter()
        self.request_s = _Histogram(LATENCY_BUCKETS_S)
        self.decide_s = _Histogram(LATENCY_BUCKETS_S)

    def decision(self, action: str, fallback: str | None, request_s: float, decide_s: float) -> None:
        with self._lock:
            self.decisions[action] += 1
            if fallback:
                self.fallbacks[fallback.split(":")[0]] += 1
            self.request_s.observe(request_s)
            self.decide_s.observe(decide_s)

    def fallback(self, reason: str) -> None:
        with self._lock:
            self.fallbacks[reason] += 1

    def bad_request(self, status: int) -> None:
        with self._lock:
            self.bad_requests[str(status)] += 1

    def outcome(self, outcome: str) -> None:
        with self._lock:
            self.outcomes[outcome] += 1

    def render(self, model_version: str, store_stats: dict[str, float]) -> str:
        """All figures as Prometheus text exposition (version 0.0.4)."""
        with self._lock:
            lines = ["# HELP nextchannel_decisions_total Decisions answered, by action.",
                     "# TYPE nextchannel_decisions_total counter"]
            lines += [f'nextchannel_decisions_total{{action="{_esc(a)}"}} {n}' for a, n in sorted(self.decisions.items())]
            lines += ["# HELP nextchannel_fallbacks_total Safe 'none' decisions taken because the normal path failed, "
                      "by reason.", "# TYPE nextchannel_fallbacks_total counter"]
            lines += [f'nextchannel_fallbacks_total{{reason="{_esc(r)}"}} {n}' for r, n in sorted(self.fallbacks.items())]
            lines += ["# HELP nextchannel_bad_requests_total Requests refused with a 4xx status, by status.",
                      "# TYPE nextchannel_bad_requests_total counter"]
            lines += [f'nextchannel_bad_requests_total{{status="{s}"}} {n}' for s, n in sorted(self.bad_requests.items())]
            lines += ["# HELP nextchannel_outcomes_total Outcomes recorded, by outcome.",
                      "# TYPE nextchannel_outcomes_total counter"]
            lines += [f'nextchannel_outcomes_total{{outcome="{_esc(o)}"}} {n}' for o, n in sorted(self.outcomes.items())]
            lines += ["# HELP nextchannel_request_seconds Time to answer POST /v1/events inside the service.",
                      "# TYPE nextchannel_request_seconds histogram", *self.request_s.lines("nextchannel_request_seconds")]
            lines += ["# HELP nextchannel_decide_seconds Time spent in Scorer.decide_one per request.",
                      "# TYPE nextchannel_decide_seconds histogram", *self.decide_s.lines("nextchannel_decide_seconds")]
        lines += ["# HELP nextchannel_model_info The model version this worker decides with.",
                  "# TYPE nextchannel_model_info gauge", f'nextchannel_model_info{{version="{_esc(model_version)}"}} 1',
                  "# HELP nextchannel_worker_info This worker's process id.", "# TYPE nextchannel_worker_info gauge",
                  f'nextchannel_worker_info{{pid="{os.getpid()}"}} 1']
        for k, v in sorted(store_stats.items()):
            lines += [f"# TYPE nextchannel_store_{k} gauge", f"nextchannel_store_{k} {v!r}"]
        return "\n".join(lines) + "\n"
