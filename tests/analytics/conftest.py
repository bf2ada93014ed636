"""Analytics tests: plots render off-screen."""

from __future__ import annotations

import os

os.environ.setdefault("MPLBACKEND", "Agg")
