"""Lazy imports of the optional extras (pandas, matplotlib) with a clear message."""

from __future__ import annotations

import importlib
from typing import Any

from membermkt.errors import UsageError

__all__ = ["MissingExtraError", "matplotlib_figure", "pandas", "pyplot"]


class MissingExtraError(UsageError):
    """An optional dependency is not installed.

    Attributes:
        package: the missing import name.
        extra: the membermkt extra that installs it (``pip install "membermkt[<extra>]"``).
    """

    def __init__(self, package: str, extra: str) -> None:
        self.package = package
        self.extra = extra
        super().__init__(
            f'{package} is not installed; install it with: pip install "membermkt[{extra}]"'
        )


def _load(name: str, package: str, extra: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise MissingExtraError(package, extra) from exc


def pandas() -> Any:
    """The ``pandas`` module.

    Raises:
        MissingExtraError: when pandas is not installed (extra ``pandas``).
    """
    return _load("pandas", "pandas", "pandas")


def pyplot() -> Any:
    """``matplotlib.pyplot`` (for interactive use: notebooks).

    Raises:
        MissingExtraError: when matplotlib is not installed (extra ``plot``).
    """
    return _load("matplotlib.pyplot", "matplotlib", "plot")


def matplotlib_figure() -> Any:
    """A new off-screen ``matplotlib.figure.Figure`` (no pyplot state; used by reports).

    Raises:
        MissingExtraError: when matplotlib is not installed (extra ``plot``).
    """
    figure = _load("matplotlib.figure", "matplotlib", "plot")
    return figure.Figure(figsize=(7.5, 4.2), layout="constrained")
