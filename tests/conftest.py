import pytest

from nextbest import Scenario
from nextbest.simulator import CustomerModel


@pytest.fixture(scope="session")
def scenario() -> Scenario:
    return Scenario.load("retail")


@pytest.fixture(scope="session")
def model(scenario: Scenario) -> CustomerModel:
    return CustomerModel(scenario)
