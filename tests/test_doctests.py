"""The examples in the public entry points' docstrings run as written."""

import doctest
import importlib

import pytest

MODULES = [
    "nextbest.scenario",
    "nextbest.logs",
    "nextbest.simulator.model",
    "nextbest.simulator.driver",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
