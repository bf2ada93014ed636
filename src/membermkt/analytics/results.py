"""Notebook-ready results: the core results plus ``to_pandas()``, ``plot()`` and
``_repr_html_`` (inherited).

Each class here subclasses the matching frozen result of :mod:`membermkt.core.analytics`
(so ``isinstance`` checks on the core class still hold) and adds the notebook bridge.
:func:`notebook` turns any core result into its notebook class.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, overload

import attrs

from membermkt.analytics import plots
from membermkt.analytics._extras import pandas, pyplot
from membermkt.core import analytics as core
from membermkt.errors import UsageError

__all__ = [
    "ActivityResult",
    "AttributionResult",
    "CohortResult",
    "FunnelResult",
    "LiftResult",
    "NotebookResult",
    "OfferResult",
    "PathResult",
    "RFMResult",
    "StaffResult",
    "notebook",
]


class NotebookResult:
    """The notebook bridge, mixed into every analytics result."""

    __slots__ = ()
    _plotter: Callable[[Any, Any], Any]

    if TYPE_CHECKING:  # provided by the core result class it is mixed into

        def table(self) -> core.Table: ...

    def to_pandas(self) -> Any:
        """The result's table as a ``pandas.DataFrame``.

        Raises:
            MissingExtraError: when pandas is not installed (``membermkt[pandas]``).
        """
        pd = pandas()
        t = self.table()
        return pd.DataFrame.from_records(list(t.rows), columns=list(t.columns))

    def plot(self, ax: Any = None) -> Any:
        """Draw the result's chart on ``ax`` (a new figure when ``None``); returns the Axes.

        Raises:
            MissingExtraError: when matplotlib is not installed (``membermkt[plot]``).
        """
        if ax is None:
            _fig, ax = pyplot().subplots(figsize=(7.5, 4.2), layout="constrained")
        return type(self)._plotter(self, ax)


class RFMResult(core.RFMResult, NotebookResult):
    """:class:`~membermkt.core.analytics.RFMResult` with the notebook bridge (RFM grid)."""

    __slots__ = ()
    _plotter = staticmethod(plots.plot_rfm)


class ActivityResult(core.ActivityResult, NotebookResult):
    """Activity classes with the notebook bridge (bars)."""

    __slots__ = ()
    _plotter = staticmethod(plots.plot_activity)


class FunnelResult(core.FunnelResult, NotebookResult):
    """Funnel result with the notebook bridge (funnel bars)."""

    __slots__ = ()
    _plotter = staticmethod(plots.plot_funnel)


class PathResult(core.PathResult, NotebookResult):
    """Paths with the notebook bridge (transition heat map)."""

    __slots__ = ()
    _plotter = staticmethod(plots.plot_paths)


class AttributionResult(core.AttributionResult, NotebookResult):
    """Attribution with the notebook bridge (bars per source)."""

    __slots__ = ()
    _plotter = staticmethod(plots.plot_attribution)


class LiftResult(core.LiftResult, NotebookResult):
    """Campaign lift with the notebook bridge (treatment vs holdout)."""

    __slots__ = ()
    _plotter = staticmethod(plots.plot_lift)


class CohortResult(core.CohortResult, NotebookResult):
    """Cohorts with the notebook bridge (retention triangle)."""

    __slots__ = ()
    _plotter = staticmethod(plots.plot_cohorts)


class StaffResult(core.StaffResult, NotebookResult):
    """Staff metrics with the notebook bridge (reply time and interactions)."""

    __slots__ = ()
    _plotter = staticmethod(plots.plot_staff)


class OfferResult(core.OfferResult, NotebookResult):
    """Next offers with the notebook bridge (members per offer)."""

    __slots__ = ()
    _plotter = staticmethod(plots.plot_offers)


_CLASSES: dict[type, type] = {
    core.RFMResult: RFMResult,
    core.ActivityResult: ActivityResult,
    core.FunnelResult: FunnelResult,
    core.PathResult: PathResult,
    core.AttributionResult: AttributionResult,
    core.LiftResult: LiftResult,
    core.CohortResult: CohortResult,
    core.StaffResult: StaffResult,
    core.OfferResult: OfferResult,
}


@overload
def notebook(result: core.RFMResult) -> RFMResult: ...


@overload
def notebook(result: core.ActivityResult) -> ActivityResult: ...


@overload
def notebook(result: core.FunnelResult) -> FunnelResult: ...


@overload
def notebook(result: core.PathResult) -> PathResult: ...


@overload
def notebook(result: core.AttributionResult) -> AttributionResult: ...


@overload
def notebook(result: core.LiftResult) -> LiftResult: ...


@overload
def notebook(result: core.CohortResult) -> CohortResult: ...


@overload
def notebook(result: core.StaffResult) -> StaffResult: ...


@overload
def notebook(result: core.OfferResult) -> OfferResult: ...


def notebook(result: Any) -> Any:
    """The notebook class of a core analytics result (returned as is when already one).

    Raises:
        UsageError: for something that is not an analytics result.
    """
    if isinstance(result, NotebookResult):
        return result
    cls = _CLASSES.get(type(result))
    if cls is None:
        raise UsageError(f"not an analytics result: {type(result).__name__}")
    return cls(**{a.name: getattr(result, a.name) for a in attrs.fields(type(result))})
