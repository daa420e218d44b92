"""mlform: machine learning as code, reconciled by plan and apply."""

from __future__ import annotations

__version__ = "0.1.0"
