"""Crisis pathway planner: model, optimise and compare mental health crisis care capacity."""

from __future__ import annotations

__version__ = "0.1.0"
