import copy
import subprocess
import sys

import pytest
import yaml

from nextbest import Scenario, ScenarioError
from nextbest.scenario import builtin_scenarios


def test_builtin_retail_loads_and_round_trips(tmp_path, scenario):
    assert "retail" in builtin_scenarios()
    assert len(scenario.personas) >= 5 and len(scenario.offers) >= 5 and len(scenario.slots) >= 3
    path = tmp_path / "copy.yaml"
    scenario.dump(path)
    assert Scenario.load(path) == scenario


def _broken(scenario, edit):
    data = copy.deepcopy(scenario.to_dict())
    edit(data)
    return data


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda d: d["personas"]["bargain_hunter"].update(price_sensitivity=-1.0),
            "personas.bargain_hunter.price_sensitivity: must be >= 0",
        ),
        (lambda d: d["personas"]["lapsing"].update(open_rate=1.5), "personas.lapsing.open_rate: must be <= 1"),
        (lambda d: d["personas"]["lapsing"].update(colour="red"), "personas.lapsing.colour: unknown key"),
        (lambda d: d.update(horizon=3), "horizon: unknown key"),
        (lambda d: d["dynamics"].pop("fatigue_decay"), "dynamics.fatigue_decay: missing required key"),
        (lambda d: d.update(horizon_days="ninety"), "horizon_days: expected an integer"),
        (
            lambda d: d["offers"]["pct10"].update(free_shipping="yes"),
            "offers.pct10.free_shipping: expected true or false",
        ),
        (lambda d: d["slots"].update(night=25.0), "slots.night: must be an hour in [0, 24)"),
        (lambda d: d.update(personas={}), "personas: must define at least one entry"),
        (
            lambda d: d["categories"]["shoes"].update(margin_rate=float("nan")),
            "categories.shoes.margin_rate: must be a finite",
        ),
    ],
)
def test_invalid_scenarios_name_the_key_path(scenario, edit, message):
    with pytest.raises(ScenarioError) as err:
        Scenario.from_dict(_broken(scenario, edit))
    assert str(err.value).startswith(message)


def test_load_names_the_file(tmp_path, scenario):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(_broken(scenario, lambda d: d["personas"]["lapsing"].update(weight=0))))
    with pytest.raises(ScenarioError, match=r"bad.yaml: personas.lapsing.weight: must be > 0"):
        Scenario.load(path)
    path.write_text("personas: [unclosed")
    with pytest.raises(ScenarioError, match="not valid YAML"):
        Scenario.load(path)
    with pytest.raises(ScenarioError, match="no such scenario file"):
        Scenario.load(tmp_path / "missing.yaml")


def test_policies_package_imports_without_heavy_dependencies():
    code = (
        "import sys, nextbest.policies, nextbest\n"
        "heavy = {'torch', 'stable_baselines3', 'simpy', 'matplotlib', 'gymnasium'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
