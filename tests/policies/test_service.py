"""The HTTP service, tested against a real server process on loopback."""

import json
import os
import urllib.error
import urllib.request

import numpy as np
import pytest

from nextbest.policies import save_policy
from nextbest.policies.service import running_server

FEATURES = ["recency_days", "frequency"]
ACTIONS = ["no_email", "newsletter@morning", "pct10@evening"]
TOKEN = "test-token"


def _policy(path, version):
    return save_policy(
        path,
        kind="linear",
        name="svc",
        version=version,
        features=FEATURES,
        actions=ACTIONS,
        arrays={"coef": np.array([[0.0, -0.5, 0.5], [0.0, 0.3, 0.1]]), "intercept": np.zeros(3)},
        feature_mean=[60, 2],
        feature_scale=[40, 2],
        temperature=1.0,
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("svc")
    policy = _policy(folder / "policy.zip", "1")
    env = {**os.environ, "NEXTBEST_API_TOKEN": TOKEN, "NEXTBEST_ID_KEY": "svc-key"}
    args = ["--log", str(folder / "log.jsonl"), "--campaign", "camp", "--campaign", "c"]
    with running_server(policy, *args, env=env) as base:
        yield base, folder, policy


def call(base, path, body=None, token=TOKEN, raw=None):
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    req = urllib.request.Request(base + path, data=data, method="POST" if data is not None else "GET")
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


CUSTOMER = {"customer_id": "c-1", "recency_days": 20, "frequency": 3, "consent": 1, "sends_7d": 0}


def test_decide_single_and_batch(server):
    base, folder, _ = server
    status, out = call(base, "/v1/decide", {"campaign_id": "camp", "customer": CUSTOMER})
    assert status == 200 and out["version"] == "1"
    (one,) = out["decisions"]
    assert one["customer_id"] == "c-1" and 0 < one["propensity"] <= 1
    batch = [{**CUSTOMER, "customer_id": f"c-{i}"} for i in range(50)]
    status, out = call(base, "/v1/decide", {"campaign_id": "camp", "customers": batch})
    assert status == 200 and len(out["decisions"]) == 50
    assert out["decisions"][1] == one  # the same customer and campaign give the same decision
    status, out = call(base, "/v1/decide", {"campaign_id": "camp", "customer": {**CUSTOMER, "consent": 0}})
    assert out["decisions"][0]["guardrail"] == "no_consent" and out["decisions"][0]["action"] == 0
    logged = (folder / "log.jsonl").read_text().splitlines()
    assert len(logged) == 52 and "c-1" not in "".join(logged)  # pseudonymised


def test_auth(server):
    base, _, _ = server
    assert call(base, "/v1/decide", {"campaign_id": "c", "customer": CUSTOMER}, token=None)[0] == 401
    assert call(base, "/v1/decide", {"campaign_id": "c", "customer": CUSTOMER}, token="wrong")[0] == 401
    assert call(base, "/healthz", token=None)[0] == 200


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"campaign_id": "c", "customer": {k: v for k, v in CUSTOMER.items() if k != "frequency"}}, "frequency"),
        ({"campaign_id": "c", "customer": {**CUSTOMER, "recency_days": "soon"}}, "recency_days"),
        ({"campaign_id": "", "customer": CUSTOMER}, "campaign_id"),
        ({"campaign_id": "c", "customers": [CUSTOMER, CUSTOMER]}, "duplicate customer id"),
        ({"campaign_id": "c"}, "exactly one of"),
        ({"campaign_id": "c", "customer": CUSTOMER, "colour": "red"}, "colour"),
        ({"campaign_id": "black-friday", "customer": CUSTOMER}, "unknown campaign 'black-friday'"),
    ],
)
def test_bad_bodies_get_422_naming_the_field_and_log_nothing(server, body, field):
    base, folder, _ = server
    before = (folder / "log.jsonl").read_text() if (folder / "log.jsonl").exists() else ""
    status, out = call(base, "/v1/decide", body)
    assert status == 422 and field in json.dumps(out)
    after = (folder / "log.jsonl").read_text() if (folder / "log.jsonl").exists() else ""
    assert after == before
    assert call(base, "/healthz")[0] == 200  # still serving


def test_oversized_and_malformed(server):
    import http.client

    base, _, _ = server
    # announce a 2 MB body and wait for the answer before sending it: the server must refuse on the header
    conn = http.client.HTTPConnection(base.removeprefix("http://"), timeout=5)
    conn.putrequest("POST", "/v1/decide")
    conn.putheader("Authorization", f"Bearer {TOKEN}")
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Content-Length", str(2_000_000))
    conn.endheaders()
    assert conn.getresponse().status == 413
    conn.close()
    assert call(base, "/v1/decide", raw=b"{not json")[0] == 422
    assert call(base, "/healthz")[0] == 200


def test_reload_swaps_policy_and_refuses_bad_files(server):
    base, folder, policy = server
    _policy(folder / "next.zip", "2")
    os.replace(folder / "next.zip", policy)
    status, out = call(base, "/v1/reload", {})
    assert status == 200 and out["version"] == "2"
    assert call(base, "/v1/policy")[1]["version"] == "2"
    policy.write_bytes(b"garbage")
    status, out = call(base, "/v1/reload", {})
    assert status == 409 and "kept the current policy" in out["detail"]
    assert call(base, "/v1/decide", {"campaign_id": "c", "customer": CUSTOMER})[1]["version"] == "2"
