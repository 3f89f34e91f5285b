"""drawer: run workflow files with parallel for_each, DAG steps and precise failure control."""

from __future__ import annotations

__version__ = "0.1.0"
