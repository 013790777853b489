"""Signing in to the dashboard with an API key: the session cookie's rules, what a viewer
and an admin may do with it, cross-site requests refused, revoked keys' sessions ended,
sign-out; and no sign-in at all with auth off."""

from typing import Any

import anyio
import httpx
import pytest
from conftest import AppClient
from helpers import eventually
from keyring import bearer, make_key

from app.domain.keys import ANONYMOUS, ApiKeyCreate, Role
from app.service.keys import KEY_CACHE_S
from app.service.sessions import SESSION_COOKIE

pytestmark = pytest.mark.anyio
ORIGIN = {"Origin": "http://taskbeat"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
HTML = {"Accept": "text/html,application/xhtml+xml"}


async def sign_in(client: httpx.AsyncClient, secret: str, **fields: str) -> httpx.Response:
    return await client.post(
        "/ui/login", data={"key": secret, **fields}, headers={**ORIGIN, **FORM}
    )


async def create_as(client: httpx.AsyncClient, secret: str) -> str:
    body = {"algorithm": "hello", "input": {"duration_ms": 60_000, "steps": 60}}
    answer = await client.post("/v1/tasks", json=body, headers=bearer(secret))
    assert answer.status_code == 202, answer.text
    return str(answer.json()["task_id"])


async def status_of(client: httpx.AsyncClient, secret: str, task_id: str) -> str:
    answer = await client.get(f"/v1/tasks/{task_id}", headers=bearer(secret))
    return str(answer.json()["status"])


async def until_status(client: httpx.AsyncClient, secret: str, task_id: str, wanted: str) -> None:
    async def reached() -> bool:
        return await status_of(client, secret, task_id) == wanted

    await eventually(reached, timeout_s=10)


def cookie_of(answer: httpx.Response) -> str:
    (header,) = answer.headers.get_list("set-cookie")
    return header


async def test_a_browser_with_no_session_is_sent_to_sign_in(app_client: AppClient) -> None:
    async with app_client(auth="on") as client:
        page = await client.get("/ui/tasks?status=failed", headers=HTML)
        assert page.status_code == 303
        assert page.headers["location"] == "/ui/login?next=%2Fui%2Ftasks%3Fstatus%3Dfailed"
        refresh = await client.get("/ui/overview", headers={"HX-Request": "true"})
        assert refresh.status_code == 401
        assert refresh.headers["hx-redirect"].startswith("/ui/login?next=")
        plain = await client.get("/ui/overview")  # not a browser: the API's 401
        assert plain.status_code == 401
        assert plain.json()["error"]["code"] == "unauthorized"
        assert (await client.get("/ui/login")).status_code == 200
        assert (await client.get("/ui/static/dashboard.css")).status_code == 200


async def test_a_viewer_signs_in_sees_no_buttons_and_is_refused_actions(
    app_client: AppClient,
) -> None:
    async with app_client(auth="on") as client:
        _, admin = await make_key(client, Role.ADMIN)
        _, viewer = await make_key(client, Role.VIEWER)
        task_id = await create_as(client, admin)
        await until_status(client, admin, task_id, "running")

        answer = await sign_in(client, viewer, next="/ui/tasks/" + task_id)
        assert answer.status_code == 303
        assert answer.headers["location"] == "/ui/tasks/" + task_id
        cookie = cookie_of(answer)
        rules = {part.strip().lower() for part in cookie.split(";")}
        assert {"httponly", "samesite=strict", "path=/ui"} <= rules
        assert "secure" not in rules  # plain http here
        assert any(rule.startswith("max-age=") for rule in rules)
        assert viewer not in cookie
        assert "tb_" not in cookie

        page = await client.get(f"/ui/tasks/{task_id}")
        assert page.status_code == 200
        assert "test-viewer (viewer)" in page.text
        assert "Sign out" in page.text
        assert "Cancel task" not in page.text
        refused = await client.post(f"/ui/tasks/{task_id}/cancel", headers=ORIGIN)
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "forbidden"
        # the cookie opens the dashboard only, never the API
        assert (await client.get("/v1/tasks")).status_code == 401
        await client.post(f"/v1/tasks/{task_id}/cancel", headers=bearer(admin))


async def test_an_admin_session_acts_from_the_dashboards_own_pages_only(
    app_client: AppClient,
) -> None:
    async with app_client(auth="on") as client:
        _, admin = await make_key(client, Role.ADMIN)
        task_id = await create_as(client, admin)
        await until_status(client, admin, task_id, "running")
        assert (await sign_in(client, admin)).headers["location"] == "/ui/overview"
        assert "Cancel task" in (await client.get(f"/ui/tasks/{task_id}")).text
        url = f"/ui/tasks/{task_id}/cancel"
        for headers in (
            {"Origin": "http://evil.example"},
            {},
            {"Referer": "http://evil.example/x"},
        ):
            forged = await client.post(url, headers=headers)
            assert forged.status_code == 403, headers
            assert forged.json()["error"]["code"] == "cross_origin"
        done = await client.post(url, headers={"Referer": "http://taskbeat/ui/tasks"})
        assert done.status_code == 303
        await until_status(client, admin, task_id, "cancelled")


async def test_bad_keys_and_client_keys_do_not_sign_in(app_client: AppClient) -> None:
    async with app_client(auth="on") as client:
        _, client_key = await make_key(client, Role.CLIENT)
        for secret, status, says in (
            ("", 401, "an API key is required"),
            ("tb_" + "x" * 43, 401, "unknown API key"),
            ("not a key", 401, "not an API key"),
            (client_key, 403, "a client key cannot open the dashboard"),
        ):
            answer = await sign_in(client, secret)
            assert answer.status_code == status, secret
            assert says in answer.text
            assert "set-cookie" not in answer.headers
        forged = await client.post("/ui/login", data={"key": client_key}, headers=FORM)
        assert forged.status_code == 403  # a sign-in posted from another site (no Origin)
        _, viewer = await make_key(client, Role.VIEWER)
        for fetch_site, status in (("cross-site", 403), ("same-site", 403), ("same-origin", 303)):
            # a plain form under Referrer-Policy: no-referrer says Origin: null
            headers = {**FORM, "Origin": "null", "Sec-Fetch-Site": fetch_site}
            answer = await client.post("/ui/login", data={"key": viewer}, headers=headers)
            assert answer.status_code == status, fetch_site
        for wanted in ("//evil.example/ui", "https://evil.example", "/ui/../v1/keys\\x"):
            _, admin = await make_key(client, Role.ADMIN)
            assert (await sign_in(client, admin, next=wanted)).headers["location"] == (
                "/ui/overview"
            )


async def test_a_revoked_keys_session_ends_within_a_second(app_client: AppClient) -> None:
    async with app_client(auth="on") as client:
        key_id, viewer = await make_key(client, Role.VIEWER)
        await sign_in(client, viewer)
        assert (await client.get("/ui/overview")).status_code == 200
        keys = client.app.state.context.keys  # type: ignore[attr-defined]
        await keys.revoke(key_id, by=ANONYMOUS)
        # what was read of a key is kept KEY_CACHE_S at most: any request after that is refused
        await anyio.sleep(KEY_CACHE_S + 0.05)
        assert (await client.get("/ui/overview")).status_code == 401
        assert (await client.get("/ui/overview", headers=HTML)).status_code == 303


async def test_a_session_ends_with_its_key_and_tampering_ends_it(app_client: AppClient) -> None:
    async with app_client(auth="on") as client:
        keys = client.app.state.context.keys  # type: ignore[attr-defined]
        brief = await keys.create(
            ApiKeyCreate(name="brief", role=Role.VIEWER, expires_in_s=2), by=ANONYMOUS
        )
        answer = await sign_in(client, brief.secret)
        max_age = next(
            int(part.split("=")[1])
            for part in cookie_of(answer).split(";")
            if part.strip().lower().startswith("max-age")
        )
        assert max_age <= 2
        token = client.cookies[SESSION_COOKIE]
        key_id, expires, signature = token.split(".")
        for forged in (f"{key_id}.{int(expires) + 3600}.{signature}", f"{key_id}.{expires}.x", "x"):
            client.cookies.set(SESSION_COOKIE, forged, path="/ui")
            assert (await client.get("/ui/overview")).status_code == 401, forged
        client.cookies.set(SESSION_COOKIE, token, path="/ui")
        assert (await client.get("/ui/overview")).status_code == 200
        await anyio.sleep(2.2)
        assert (await client.get("/ui/overview")).status_code == 401


async def test_sign_out_forgets_the_session(app_client: AppClient) -> None:
    async with app_client(auth="on") as client:
        _, viewer = await make_key(client, Role.VIEWER)
        await sign_in(client, viewer)
        assert (await client.get("/ui/overview")).status_code == 200
        assert (
            await client.post("/ui/logout", headers={"Origin": "http://evil"})
        ).status_code == 403
        out = await client.post("/ui/logout", headers=ORIGIN)
        assert out.status_code == 303
        assert out.headers["location"] == "/ui/login"
        assert SESSION_COOKIE not in client.cookies
        assert (await client.get("/ui/overview")).status_code == 401


async def test_over_tls_the_cookie_is_secure(app_client: AppClient) -> None:
    async with app_client(auth="on") as client:
        _, viewer = await make_key(client, Role.VIEWER)
        client.base_url = httpx.URL("https://taskbeat")
        answer = await client.post(
            "/ui/login", data={"key": viewer}, headers={"Origin": "https://taskbeat", **FORM}
        )
        assert "secure" in {part.strip().lower() for part in cookie_of(answer).split(";")}


async def test_with_auth_off_no_sign_in_is_needed(client: httpx.AsyncClient) -> None:
    answer: Any = await client.get("/ui/login?next=/ui/replicas")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/ui/replicas"
    page = await client.get("/ui/overview")
    assert page.status_code == 200
    assert "Sign out" not in page.text


async def test_a_session_works_on_every_replica_sharing_the_session_secret(
    app_client: AppClient,
) -> None:
    shared = "s" * 40
    async with (
        app_client(auth="on", session_secret=shared) as first,
        app_client(auth="on", session_secret=shared) as second,
        app_client(auth="on") as own_secret,
    ):
        _, viewer = await make_key(first, Role.VIEWER)
        assert (await sign_in(first, viewer)).status_code == 303
        token = first.cookies[SESSION_COOKIE]
        for other, status in ((second, 200), (own_secret, 401)):
            other.cookies.set(SESSION_COOKIE, token, path="/ui")
            assert (await other.get("/ui/overview")).status_code == status
