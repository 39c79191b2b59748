import os

import pytest

from nextbest import Scenario
from nextbest.simulator import CustomerModel


@pytest.fixture(scope="session")
def scenario() -> Scenario:
    return Scenario.load("retail")


@pytest.fixture(scope="session")
def model(scenario: Scenario) -> CustomerModel:
    return CustomerModel(scenario)


def pytest_configure(config):
    """Under pytest-xdist every worker would run torch on all cores: two workers x two threads on two
    cores makes training tests ~10x slower. One thread per worker."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch

        torch.set_num_threads(1)
