"""How long each kind of job takes on the node, learned from this client's own jobs, and when to poll them.

A client talks to one node, so what it learns is per (endpoint, kind). The kind is the API, and for the ISO jobs
also the VM's state: the node attaches an ISO to a Stopped VM in its database alone (§5.2 step 9), to a Running
one through the hypervisor, so the two take different times.

- A sample is the time from the submit to the poll that found the job done, for a job that succeeded with
  nothing unusual on the way (no lost answer, resubmit or odd poll answer): an upper bound of its duration.
- Nothing is learned before ``MIN_SAMPLES`` samples: the first jobs of a kind poll on the policy's own schedule.
- The learned duration is a low quantile of the last ``WINDOW`` samples: the smallest while there are fewer
  than 10, then the 10th percentile, so that one job that ended at once (a detach with nothing to detach)
  does not move it, and slow outliers never do.
- The step is the spread of the samples (median minus that low quantile): at least 2 % of the duration and the
  policy's first step (15 ms: finer, a loaded machine's late wake-ups and the node's own jitter would decide
  which poll sees the end), at most the policy's step at that time. Jobs that always take about as long get a
  fine step, jobs that vary a coarse one, so that either way about two or three polls find a job's end.
- A job sleeps until one step before the learned duration, then polls every step up to one step past the
  upper quantile of the samples (at most ``DENSE_POLLS`` polls), then as the policy says: a job that runs long
  backs off exactly as a job of unknown kind does.
- A job found done at its very first poll may mean that the jobs became faster: each such job in a row puts
  the next first poll twice as many steps earlier, so a kind that became faster is caught up with in a few jobs,
  while a single early job costs about one poll more.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field

from ..config import PollPolicy

WINDOW = 20  # samples kept per kind
MIN_SAMPLES = 3  # "a few jobs": with fewer, the policy's own schedule
DENSE_POLLS = 5  # the most polls at the learned step before the policy's schedule takes over
_FINE_RATIO = 0.02  # the finest step, as a share of the learned duration (and never below the policy's floor)
_MAX_DOUBLINGS = 6  # how far back a run of jobs found done at their first poll moves the first poll


@dataclass(frozen=True)
class Plan:
    """When to poll a job of a learned kind, in seconds after its submit."""

    first: float  # the first poll
    step: float  # then every `step`
    until: float  # up to here; then the policy's schedule


@dataclass
class _Kind:
    samples: deque[float] = field(default_factory=lambda: deque(maxlen=WINDOW))
    done_at_first_poll: int = 0  # jobs in a row found done at their first poll

    def quantiles(self) -> tuple[float, float, float]:
        """(low, median, high): the learned duration (a low quantile of the samples), the median, an upper one."""
        ordered = sorted(self.samples)
        tenth = len(ordered) // 10
        return ordered[tenth], ordered[len(ordered) // 2], ordered[len(ordered) - 1 - tenth]


class JobDurations:
    """Thread-safe: the provider runs up to 64 operations at once through one client."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._kinds: dict[str, _Kind] = {}

    def plan(self, kind: str, policy: PollPolicy) -> Plan | None:
        """When to poll a job of this kind; None for a kind not learned yet (the policy's schedule)."""
        with self._lock:
            known = self._kinds.get(kind)
            if known is None or len(known.samples) < MIN_SAMPLES:
                return None
            low, median, high = known.quantiles()
            earlier = 2 ** min(known.done_at_first_poll, _MAX_DOUBLINGS)
        finest = max(policy.floor, _FINE_RATIO * low)
        step = max(finest, min(median - low, policy.next_delay(low)))
        first = max(policy.floor, low - earlier * step)  # never sooner than the policy's own first poll
        return Plan(first, step, min(max(high, low) + step, first + (DENSE_POLLS - 1) * step))

    def record(self, kind: str, seconds: float, *, done_at_first_poll: bool) -> None:
        """A job of this kind succeeded; the poll that found it done was sent ``seconds`` after its submit."""
        with self._lock:
            known = self._kinds.setdefault(kind, _Kind())
            known.samples.append(seconds)
            known.done_at_first_poll = known.done_at_first_poll + 1 if done_at_first_poll else 0


def next_delay(policy: PollPolicy, elapsed: float, plan: Plan | None) -> float:
    """Seconds to sleep before the next poll of a job submitted ``elapsed`` seconds ago."""
    if plan is not None and elapsed < plan.until:
        return plan.first - elapsed if elapsed < plan.first else plan.step
    return policy.next_delay(elapsed)
