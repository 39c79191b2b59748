"""Errors raised at the edges: scenario files, logged data, CLI arguments.

Every error message names what was wrong and where (file, key path or column, row), so the CLI can print
it as one line and exit with status 2.
"""

from __future__ import annotations


class NextbestError(Exception):
    """Base class of errors caused by user input (not by a bug in nextbest)."""


class ScenarioError(NextbestError, ValueError):
    """A scenario file or object is invalid; the message names the key path."""


class DataError(NextbestError, ValueError):
    """Logged data is invalid; the message names the file, column and row."""
