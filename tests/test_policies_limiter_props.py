"""Properties of LocalLimiter under arbitrary arrival patterns (hypothesis, fake clock):
it never admits more than rate x time + burst, never admits before arrival, keeps FIFO order,
and refuses only calls whose wait would really have exceeded max_wait."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.errors import RateLimited
from agent.policies import FakeClock, LocalLimiter

EPS = 1e-6


@dataclass
class Outcome:
    index: int
    arrived: float
    cost: float
    admitted: float | None = None
    retry_after: float | None = None


async def _scenario(
    rate: float, burst: int, max_wait: float, arrivals: list[tuple[float, int]]
) -> list[Outcome]:
    clock = FakeClock()
    lim = LocalLimiter(requests_per_second=rate, burst=burst, max_wait=max_wait, clock=clock)
    outcomes: list[Outcome] = []
    tasks = []

    async def call(out: Outcome) -> None:
        try:
            await lim.acquire(out.cost)
        except RateLimited as exc:
            out.retry_after = exc.retry_after
        else:
            out.admitted = clock.now()

    for i, (gap, cost) in enumerate(arrivals):
        await clock.run_for(gap, settle=2)
        out = Outcome(i, clock.now(), float(min(cost, burst)))
        outcomes.append(out)
        tasks.append(asyncio.create_task(call(out)))
        await asyncio.sleep(0)
    await clock.run_for(max_wait + 1, settle=2)
    await asyncio.gather(*tasks)
    return outcomes


arrivals_st = st.lists(
    st.tuples(st.floats(0, 2, allow_nan=False), st.integers(1, 3)), min_size=1, max_size=40
)


@settings(max_examples=150, deadline=None)
@given(
    rate=st.floats(0.5, 50),
    burst=st.integers(1, 10),
    max_wait=st.floats(0, 5),
    arrivals=arrivals_st,
)
def test_never_more_than_rate_times_time_plus_burst_and_fifo(
    rate: float, burst: int, max_wait: float, arrivals: list[tuple[float, int]]
) -> None:
    outcomes = asyncio.run(_scenario(rate, burst, max_wait, arrivals))
    admitted = [o for o in outcomes if o.admitted is not None]
    for o in admitted:
        assert o.admitted is not None
        assert o.arrived - EPS <= o.admitted <= o.arrived + max_wait + EPS
    # the bound, over every window [t_i, t_j] between two admissions
    times = sorted((o.admitted, o.cost) for o in admitted if o.admitted is not None)
    for i in range(len(times)):
        total = 0.0
        for j in range(i, len(times)):
            total += times[j][1]
            assert total <= rate * (times[j][0] - times[i][0]) + burst + EPS
    # FIFO: admissions happen in arrival order
    order = [o.admitted for o in sorted(admitted, key=lambda o: o.index)]
    assert order == sorted(order)  # type: ignore[type-var]
    # a refusal is honest: the wait would have been longer than max_wait
    for o in outcomes:
        if o.admitted is None:
            assert o.retry_after is not None
            assert o.retry_after > max_wait - EPS


@settings(max_examples=100, deadline=None)
@given(rate=st.floats(0.5, 50), burst=st.integers(1, 10), n=st.integers(1, 60))
def test_a_burst_of_simultaneous_calls_is_spread_exactly_one_interval_apart(
    rate: float, burst: int, n: int
) -> None:
    outcomes = asyncio.run(_scenario(rate, burst, 1e6, [(0.0, 1)] * n))
    start = outcomes[0].arrived
    for o in outcomes:
        expected = start + max(0, o.index - burst + 1) / rate
        assert o.admitted is not None
        assert abs(o.admitted - expected) < 1e-6
