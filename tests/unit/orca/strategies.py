"""Hypothesis strategies for ORCA reports."""

from __future__ import annotations

from hypothesis import strategies as st

from xdscp.orca import LoadReport

NAMES = st.from_regex(r"[A-Za-z0-9_./-]{1,20}", fullmatch=True)
NON_NEGATIVE = st.floats(min_value=0.0, max_value=1e300, allow_nan=False)
FRACTION = st.floats(min_value=0.0, max_value=1.0)
ANY = st.floats(allow_nan=False, allow_infinity=False)


@st.composite
def reports(draw: st.DrawFn, *, maps: bool = True) -> LoadReport:
    """Any valid report; `maps=False` leaves out the maps TEXT cannot carry."""
    return LoadReport(
        cpu_utilization=draw(NON_NEGATIVE),
        mem_utilization=draw(FRACTION),
        application_utilization=draw(NON_NEGATIVE),
        rps_fractional=draw(NON_NEGATIVE),
        eps=draw(NON_NEGATIVE),
        utilization=draw(st.dictionaries(NAMES, FRACTION, max_size=4)) if maps else {},
        request_cost=draw(st.dictionaries(NAMES, ANY, max_size=4)) if maps else {},
        named_metrics=draw(st.dictionaries(NAMES, ANY, max_size=4)),
    )
