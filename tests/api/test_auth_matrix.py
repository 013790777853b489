"""Every route of the app's own route table, asked with every kind of key: each answers as
its access rule (app/api/auth.py) says, and a route without a rule fails here."""

from typing import Any

import httpx
import pytest
from conftest import AppClient
from helpers import create, wait_for
from keyring import bearer, make_expired_key, make_key, make_revoked_key

from app.api.auth import KEYLESS, ROLES, Access, route_table, rule_of
from app.domain.keys import Role, new_secret

pytestmark = pytest.mark.anyio
BAD_KEYS = ("no key", "malformed", "unknown", "revoked", "expired")
ROLE_OF = {
    "other client": Role.CLIENT,
    "owner": Role.CLIENT,
    "viewer": Role.VIEWER,
    "admin": Role.ADMIN,
}
BODIES: dict[tuple[str, str], Any] = {
    ("POST", "/v1/tasks"): {"algorithm": "hello", "input": {"duration_ms": 1}},
    ("POST", "/v1/keys"): {"name": "from-the-matrix", "role": "viewer"},
}


async def identities(client: httpx.AsyncClient) -> dict[str, dict[str, str]]:
    headers = {
        "no key": {},
        "malformed": {"Authorization": "Bearer not-a-key"},
        "unknown": bearer(new_secret()),
        "revoked": bearer((await make_revoked_key(client))[1]),
        "expired": bearer((await make_expired_key(client))[1]),
    }
    for name, role in ROLE_OF.items():
        headers[name] = bearer((await make_key(client, role))[1])
    return headers


def fill(path: str, values: dict[str, str]) -> str:
    for name, value in values.items():
        path = path.replace("{" + name + "}", value)
    assert "{" not in path, f"the matrix has no value for a parameter of {path}"
    return path


def operations(app: Any) -> list[tuple[str, str]]:
    found = []
    for route in route_table(app.router.routes):
        for method in sorted(getattr(route, "methods", None) or {"GET"}):
            if method != "HEAD":
                found.append((method, route.path))
    return found


def check(
    method: str, path: str, identity: str, access: Access, response: httpx.Response, keyless: int
) -> None:
    where = f"{method} {path} with {identity}: {response.status_code} {response.text[:200]}"
    if access in KEYLESS:
        assert response.status_code == keyless, where
        assert response.status_code != 403, where
        return
    if identity in BAD_KEYS:
        assert response.status_code == 401, where
        assert response.headers["www-authenticate"].startswith("Bearer"), where
        assert response.json()["error"]["code"] == "unauthorized", where
        return
    if ROLE_OF[identity] not in ROLES[access]:
        assert response.status_code == 403, where
        assert response.json()["error"]["code"] == "forbidden", where
        return
    assert response.status_code not in (401, 403), where
    if "{task_id}" in path:
        assert (response.status_code == 404) == (identity == "other client"), where


# Routes after which the task is gone for the next identity: a delete.
CONSUMES_THE_TASK = {("DELETE", "/v1/tasks/{task_id}")}


async def test_every_route_answers_every_key_as_its_rule_says(app_client: AppClient) -> None:
    async with app_client(auth="on", key_rate_per_s=100000) as client:
        headers = await identities(client)
        task = await create_as(client, headers["owner"])
        await wait_for_as(client, headers["owner"], task["task_id"])
        spare_key_id, _ = await make_revoked_key(client)
        values = {"task_id": task["task_id"], "key_id": spare_key_id, "name": "hello"}
        table = operations(client.app)  # type: ignore[attr-defined]
        assert len(table) >= 17
        for method, path in table:
            access = rule_of(method, path)
            assert access is not None, f"{method} {path} has no access rule in app/api/auth.py"
            url = fill(path, values)
            body = BODIES.get((method, path), {} if method in ("POST", "PATCH", "PUT") else None)
            # as from the dashboard's own page: its actions refuse any other origin (403)
            origin = {"Origin": str(client.base_url).rstrip("/")}
            keyless = (await client.request(method, url, json=body, headers=origin)).status_code
            for identity in headers:
                if (method, path) in CONSUMES_THE_TASK:  # each identity tries its own task
                    fresh = await create_as(client, headers["owner"])
                    await wait_for_as(client, headers["owner"], fresh["task_id"])
                    url = fill(path, {**values, "task_id": fresh["task_id"]})
                sent = {**headers[identity], **origin}
                response = await client.request(method, url, json=body, headers=sent)
                check(method, path, identity, access, response, keyless)


async def create_as(client: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, Any]:
    response = await client.post(
        "/v1/tasks", json={"algorithm": "hello", "input": {"duration_ms": 1}}, headers=headers
    )
    assert response.status_code == 202, response.text
    return dict(response.json())


async def wait_for_as(client: httpx.AsyncClient, headers: dict[str, str], task_id: str) -> None:
    response = await client.get(f"/v1/tasks/{task_id}/wait?timeout_s=10", headers=headers)
    assert response.json()["status"] == "succeeded", response.text


async def test_the_openapi_document_declares_the_bearer_scheme(app_client: AppClient) -> None:
    async with app_client(auth="on") as client:
        for open_path in ("/docs", "/openapi.json", "/healthz", "/readyz"):
            assert (await client.get(open_path)).status_code == 200, open_path
        document = (await client.get("/openapi.json")).json()
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    for path, item in document["paths"].items():
        for method, operation in item.items():
            access = rule_of(method.upper(), path)
            assert access is not None, (method, path)
            if access in KEYLESS:
                assert "security" not in operation, (method, path)
                continue
            assert operation["security"] == [{"bearer": []}], (method, path)
            assert "WWW-Authenticate" in operation["responses"]["401"]["headers"], (method, path)
            assert ("403" in operation["responses"]) == (access is not Access.READ), (method, path)


async def test_with_auth_off_on_loopback_no_key_is_needed(client: httpx.AsyncClient) -> None:
    task = await create(client, duration_ms=1)
    assert (await wait_for(client, task["task_id"]))["status"] == "succeeded"
    assert (await client.get("/v1/keys")).status_code == 200


# What the issue asks of each route, written out apart from the rule table that enforces it.
C, V, A = Role.CLIENT, Role.VIEWER, Role.ADMIN
ISSUE_ROLES = {
    ("POST", "/v1/tasks"): {C, A},
    ("GET", "/v1/tasks"): {C, V, A},
    ("GET", "/v1/tasks/{task_id}"): {C, V, A},
    ("POST", "/v1/tasks/{task_id}/cancel"): {C, A},
    ("POST", "/v1/tasks/{task_id}/retry"): {C, A},
    ("DELETE", "/v1/tasks/{task_id}"): {C, A},
    ("GET", "/v1/tasks/{task_id}/wait"): {C, V, A},
    ("GET", "/v1/tasks/{task_id}/events"): {C, V, A},
    ("GET", "/v1/tasks/{task_id}/attempts"): {C, V, A},
    ("POST", "/v1/bulk/cancel"): {C, A},
    ("GET", "/v1/stats"): {C, V, A},
    ("GET", "/v1/algorithms"): {C, V, A},
    ("PATCH", "/v1/algorithms/{name}"): {A},
    ("POST", "/v1/algorithms/{name}/pause"): {A},
    ("GET", "/v1/schedules"): {V, A},
    ("POST", "/v1/schedules"): {A},
    ("GET", "/v1/keys"): {A},
    ("POST", "/v1/keys"): {A},
    ("DELETE", "/v1/keys/{key_id}"): {A},
    ("GET", "/metrics"): {V, A},
    ("GET", "/debug/pprof"): {A},
}


def test_the_rules_give_each_role_what_the_issue_says() -> None:
    for (method, path), roles in ISSUE_ROLES.items():
        access = rule_of(method, path)
        assert access is not None, (method, path)
        assert access not in KEYLESS, (method, path)
        assert ROLES[access] == roles, (method, path, access)
    assert rule_of("GET", "/healthz") is Access.OPEN
    assert rule_of("POST", "/v1/tasks/{task_id}/callback") is Access.SIGNED
