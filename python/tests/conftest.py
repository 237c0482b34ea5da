"""Shared helpers of the Python tests: random instances and finite differences."""

import os

import pytest


def require(name: str) -> bool:
    """Whether MATDIFF_REQUIRE_<NAME>=1 (CI): a missing tool then fails instead of skipping."""
    return os.environ.get(f"MATDIFF_REQUIRE_{name.upper()}") == "1"


def import_or_skip(module: str, required_by: str):
    """The module, or a skip where it is absent (a failure where ``required_by`` is required)."""
    if require(required_by):
        return __import__(module)
    return pytest.importorskip(module)
