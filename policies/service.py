"""The HTTP decision service (FastAPI): ``nextbest serve``.

* ``POST /v1/decide``: ``{"campaign_id": "...", "customer": {...}}`` or ``{"campaign_id": "...",
  "customers": [{...}, ...]}`` -> decisions with the propensity to log.
* ``GET /v1/policy``: the artifact's manifest. ``GET /healthz``: liveness and the policy in use.
* ``POST /v1/reload`` (or SIGHUP): read the policy file again, verify it, and swap it in; requests in
  flight finish with the policy they started with; a bad file leaves the old policy serving.

A bearer token (``NEXTBEST_API_TOKEN``) is required unless auth is switched off, which is only allowed on
a loopback host. Bodies are validated (422 naming the field) and size-limited (413). Rejected requests
write nothing to the decision log.
"""

from __future__ import annotations

import contextlib
import hmac
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StrictStr, model_validator

from nextbest.errors import NextbestError
from nextbest.policies.artifact import ArtifactError, load
from nextbest.policies.decision_log import DecisionLog
from nextbest.policies.runtime import Runtime

__all__ = ["TOKEN_ENV", "create_app", "running_server"]

TOKEN_ENV = "NEXTBEST_API_TOKEN"
MAX_BODY_BYTES = 1_000_000
MAX_CUSTOMERS = 10_000

Value = StrictInt | StrictFloat | StrictStr | bool | None


class DecideRequest(BaseModel):
    """One customer or a batch, for one campaign."""

    model_config = ConfigDict(extra="forbid")
    campaign_id: StrictStr = Field(min_length=1, max_length=200)
    customer: dict[str, Value] | None = None
    customers: list[dict[str, Value]] | None = Field(default=None, min_length=1, max_length=MAX_CUSTOMERS)

    @model_validator(mode="after")
    def one_of(self) -> DecideRequest:
        if (self.customer is None) == (self.customers is None):
            raise ValueError("give exactly one of 'customer' or 'customers'")
        return self


_DECISION_FIELDS = ("customer_id", "action", "action_name", "offer", "slot", "propensity", "guardrail")


class _State:
    """The runtime in use; replaced whole on reload, so a request keeps the one it started with."""

    def __init__(self, policy_path: Path) -> None:
        self.policy_path = policy_path
        self.runtime = Runtime(load(policy_path))
        self.lock = threading.Lock()

    def reload(self) -> Runtime:
        with self.lock:
            runtime = Runtime(load(self.policy_path))  # verify fully before swapping
            self.runtime = runtime
            return runtime


def create_app(
    policy_path: str | os.PathLike[str],
    *,
    token: str | None = None,
    require_auth: bool = True,
    log_path: str | os.PathLike[str] | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
    campaigns: set[str] | None = None,
) -> FastAPI:
    """The service for one policy file.

    Args:
        policy_path: the artifact; reloaded from the same path on ``/v1/reload`` or SIGHUP.
        token: bearer token (default: ``NEXTBEST_API_TOKEN``); required when ``require_auth``.
        require_auth: False only for loopback development (the CLI enforces that).
        log_path: append every accepted decision to this decision log (needs ``NEXTBEST_ID_KEY``).
        max_body_bytes: larger request bodies get 413.
        campaigns: if given, the only campaign ids accepted (others get 422 naming ``campaign_id``).
    """
    state = _State(Path(policy_path))
    token = token if token is not None else os.environ.get(TOKEN_ENV)
    if require_auth and not token:
        raise NextbestError(f"set {TOKEN_ENV} (or use --no-auth on a loopback host)")
    log = DecisionLog(log_path) if log_path is not None else None
    app = FastAPI(title="nextbest decision service", version="1")

    @app.middleware("http")
    async def limit_body(request: Request, call_next: Any) -> Any:
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > max_body_bytes:
            return JSONResponse({"detail": f"request body over {max_body_bytes} bytes"}, status_code=413)
        body = await request.body()
        if len(body) > max_body_bytes:
            return JSONResponse({"detail": f"request body over {max_body_bytes} bytes"}, status_code=413)
        return await call_next(request)

    def authorised(request: Request) -> None:
        if not require_auth:
            return
        header = request.headers.get("authorization", "")
        given = header[len("Bearer ") :] if header.startswith("Bearer ") else ""
        if not hmac.compare_digest(given.encode(), str(token).encode()):
            raise HTTPException(status_code=401, detail="missing or wrong bearer token")

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        runtime = state.runtime
        return {"status": "ok", "policy": runtime.policy.name, "version": runtime.version}

    @app.get("/v1/policy", dependencies=[Depends(authorised)])
    def policy() -> dict[str, Any]:
        return state.runtime.policy.manifest

    @app.post("/v1/decide", dependencies=[Depends(authorised)])
    def decide(body: DecideRequest) -> dict[str, Any]:
        import pandas as pd

        if campaigns is not None and body.campaign_id not in campaigns:
            detail = [{"loc": ["body", "campaign_id"], "msg": f"unknown campaign {body.campaign_id!r}"}]
            raise HTTPException(status_code=422, detail=detail)
        runtime = state.runtime
        if body.customer is not None and log is None:  # the common live-send call: no pandas on this path
            try:
                one = runtime.decide(body.customer, body.campaign_id)
            except NextbestError as exc:
                raise HTTPException(status_code=422, detail=[{"loc": ["body", "customer"], "msg": str(exc)}]) from None
            row = {k: getattr(one, k) for k in _DECISION_FIELDS}
            return {"policy": runtime.policy.name, "version": runtime.version, "decisions": [row]}
        records = [body.customer] if body.customer is not None else body.customers
        assert records is not None
        frame = pd.DataFrame.from_records(records)
        try:
            decided = runtime.decide_batch(frame, body.campaign_id, with_context=log is not None)
        except NextbestError as exc:
            raise HTTPException(status_code=422, detail=[{"loc": ["body", "customers"], "msg": str(exc)}]) from None
        if log is not None:
            log.append(decided.assign(decision_time=pd.Timestamp.now(tz="UTC").tz_localize(None)))
        columns = list(_DECISION_FIELDS)
        rows = decided[columns].astype(object).where(decided[columns].notna(), None).to_dict(orient="records")
        return {"policy": runtime.policy.name, "version": runtime.version, "decisions": rows}

    @app.post("/v1/reload", dependencies=[Depends(authorised)])
    def reload() -> dict[str, Any]:
        try:
            runtime = state.reload()
        except ArtifactError as exc:
            raise HTTPException(status_code=409, detail=f"kept the current policy: {exc}") from None
        return {"policy": runtime.policy.name, "version": runtime.version}

    if threading.current_thread() is threading.main_thread() and hasattr(signal, "SIGHUP"):

        def on_hup(signum: int, frame: Any) -> None:
            with contextlib.suppress(ArtifactError):  # the old policy keeps serving; /v1/reload says why
                state.reload()

        signal.signal(signal.SIGHUP, on_hup)
    return app


@contextlib.contextmanager
def running_server(
    policy_path: str | os.PathLike[str], *args: str, env: dict[str, str] | None = None, timeout: float = 30.0
) -> Iterator[str]:
    """Run ``nextbest serve`` for ``policy_path`` on a free loopback port in a child process (extra CLI
    ``args`` appended) and yield its base URL once ``/healthz`` answers; stop it on exit. For tests and
    benchmarks that need a real server."""
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [sys.executable, "-m", "nextbest.scripts.cli", "serve", "--policy", str(policy_path)]
    proc = subprocess.Popen(
        [*command, "--port", str(port), *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                urllib.request.urlopen(base + "/healthz", timeout=1).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    proc.kill()
                    raise RuntimeError(f"nextbest serve did not start: {proc.stderr.read().decode()}") from None
                time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=10)
