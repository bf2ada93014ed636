"""The optional pandas import of the engine's ``to_pandas`` methods."""

from __future__ import annotations

from typing import Any

from membermkt.errors import UsageError


def pandas() -> Any:
    """The ``pandas`` module.

    Raises:
        UsageError: when pandas is not installed.
    """
    try:
        import pandas as pd
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise UsageError("to_pandas needs pandas: pip install 'membermkt[pandas]'") from exc
    return pd
