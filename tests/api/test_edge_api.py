"""Every route of the app, read from its route table (a new route is covered as it lands):
odd paths, queries, headers and bodies get a 4xx with the error envelope, never a 5xx;
methods a path does not allow get 405 with Allow; every answer has the defensive headers."""

import base64
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute
from helpers import create
from starlette.routing import Route

from app.domain.models import new_task_id

pytestmark = pytest.mark.anyio
ODD_TEXT = ["", " ", "-1", "+1", "²", "١٢", "9" * 5000, "1e309", "nan", "é", "\x00", "a,b=c"]
ODD_IDS = ["nope", "²", "%00", "%C3%A9", "x" * 3000, new_task_id().upper()]
ODD_BODIES: list[tuple[bytes, str]] = [
    (b"[" * 10_000 + b"]" * 10_000, "nested too deep"),
    (b'{"algorithm": "hello", "input": {"n": 1' + b"0" * 5000 + b"}}", "out of range"),
    (b'{"algorithm": "hello", "input": {"n": "\xff"}}', "UTF-8"),
    (b"not json", "not valid JSON"),
    (b'{"algorithm": "hello", "input": {"n": 1e309}}', "out of range"),
    (b'{"algorithm": "hello", "input": {"n": NaN}}', "not valid JSON"),
    (b'{"algorithm": "hello", "input": {"s": "\\u0000"}}', "NUL"),
    (b'{"algorithm": "hello", "timeout_s": "5"}', "timeout_s"),
    (b'{"algorithm": "hello", "timeout_s": 5.0}', "timeout_s"),
    (b'{"algorithm": "hello", "timeout_s": true}', "timeout_s"),
]
METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE"}


def assert_envelope(response: httpx.Response) -> None:
    assert 400 <= response.status_code < 500 or response.status_code == 503, response.text
    error = response.json()["error"]
    assert isinstance(error["code"], str)
    assert error["code"]
    assert isinstance(error["message"], str)
    assert error["message"]
    assert_defensive(response)


def assert_defensive(response: httpx.Response) -> None:
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["cache-control"] == "no-store"


def route_table(routes: list[Any]) -> list[Any]:
    """Every route, those of included routers too (FastAPI includes routers lazily)."""
    flat = []
    for route in routes:
        included = getattr(route, "original_router", None)
        flat += route_table(included.routes) if included is not None else [route]
    return flat


def api_routes(client: Any) -> list[APIRoute]:
    routes = [route for route in route_table(client.app.routes) if isinstance(route, APIRoute)]
    assert len(routes) >= 11
    return routes


def params(route: APIRoute, where: str) -> list[str]:
    """Names of the route's query or header parameters, its dependencies' included."""
    names, pending = [], [route.dependant]
    while pending:
        dependant = pending.pop()
        names += [field.alias for field in getattr(dependant, f"{where}_params")]
        pending += dependant.dependencies
    return names


def fill(path: str, value: str) -> str:
    while "{" in path:
        start, end = path.index("{"), path.index("}")
        path = path[:start] + value + path[end + 1 :]
    return path


async def test_odd_values_on_every_route_are_4xx_with_the_envelope(client: Any) -> None:
    for route in api_routes(client):
        (method,) = route.methods
        known = fill(route.path, new_task_id())
        for task_id in ODD_IDS if "{" in route.path else []:
            response = await client.request(method, fill(route.path, task_id))
            assert response.status_code == 404, (route.path, task_id, response.text)
            assert_envelope(response)
        for value in ODD_TEXT:
            for name in params(route, "query"):
                response = await client.request(method, known, params={name: value})
                assert response.status_code < 500, (route.path, name, value)
                if response.status_code >= 400:
                    assert_envelope(response)
            for name in params(route, "header"):
                header = value.encode("utf-8")  # raw bytes on the wire, as an attacker sends
                response = await client.request(method, known, headers={name: header})
                assert response.status_code < 500, (route.path, name, value)
                if response.status_code >= 400:
                    assert_envelope(response)
        if method == "POST":
            for body, _ in ODD_BODIES:
                response = await client.request(
                    method, known, content=body, headers={"content-type": "application/json"}
                )
                assert response.status_code < 500, (route.path, body[:40])
                if response.status_code >= 400:
                    assert_envelope(response)


@pytest.mark.parametrize(("body", "words"), ODD_BODIES)
async def test_a_bad_body_is_422_saying_what_is_wrong(client: Any, body: bytes, words: str) -> None:
    response = await client.post(
        "/v1/tasks", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert_envelope(response)
    assert words in response.json()["error"]["message"]
    assert (await client.get("/v1/tasks")).json()["items"] == []


async def test_methods_a_path_does_not_allow_are_405_with_allow(client: Any) -> None:
    allowed: dict[str, set[str]] = {}
    for route in route_table(client.app.routes):
        if isinstance(route, Route) and route.methods:
            allowed.setdefault(route.path, set()).update(route.methods)
    assert len(allowed) >= 9
    for path, methods in allowed.items():
        for method in sorted(METHODS - methods):
            response = await client.request(method, fill(path, new_task_id()))
            assert response.status_code == 405, (method, path)
            assert_envelope(response)
            assert set(response.headers["allow"].split(", ")) == methods, (method, path)


async def test_a_cursor_at_the_calendar_edge_is_422_not_an_outage(client: Any) -> None:
    task = await create(client, duration_ms=0)
    for moment in ("9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+05:00"):
        raw = f"{moment}|{task['task_id']}".encode()
        cursor = base64.urlsafe_b64encode(raw).decode().rstrip("=")
        response = await client.get("/v1/tasks", params={"cursor": cursor})
        assert response.status_code == 422, response.text
        assert response.json()["error"]["message"].startswith("cursor:")
        assert_envelope(response)


async def test_last_event_id_is_ascii_digits(client: Any) -> None:
    task = await create(client, duration_ms=0)
    url = f"/v1/tasks/{task['task_id']}/events"
    for value in ("²".encode(), b"9" * 5000, b"-5", b"1 2"):
        response = await client.get(url, headers={"Last-Event-ID": value})
        assert response.status_code == 422, value
        assert "Last-Event-ID" in response.json()["error"]["message"]


async def test_task_answers_are_not_cached(client: Any) -> None:
    task = await create(client, duration_ms=0)
    for path in (f"/v1/tasks/{task['task_id']}", "/v1/tasks", "/healthz"):
        assert_defensive(await client.get(path))


async def test_the_openapi_document_lists_every_status_with_the_error_schema(client: Any) -> None:
    document = (await client.get("/openapi.json")).json()
    error = {"$ref": "#/components/schemas/Error"}
    assert set(document["components"]["schemas"]["Error"]["properties"]) == {"error"}
    documented = {
        (path, method.upper()) for path, ops in document["paths"].items() for method in ops
    }
    for route in api_routes(client):
        if not route.include_in_schema:
            continue  # the dashboard's pages and /debug are not the API
        (method,) = route.methods
        assert (route.path, method) in documented
        responses = document["paths"][route.path][method.lower()]["responses"]
        assert "413" in responses
        for status, answer in responses.items():
            if int(status) >= 400 and route.path != "/readyz":
                assert answer["content"]["application/json"]["schema"] == error, (
                    route.path,
                    status,
                )
    callback = document["paths"]["/v1/tasks/{task_id}/callback"]["post"]
    assert {"401", "404", "409", "422"} <= set(callback["responses"])
    assert any(p["name"] == "X-Taskbeat-Signature" for p in callback["parameters"])
    body = callback["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert set(document["components"]["schemas"][body.rsplit("/", 1)[1]]["properties"]) == {
        "status", "progress", "result", "error"
    }  # fmt: skip
    assert "HTTPValidationError" not in str(document)
