"""`taskbeat heartbeats` counts staleness as the service counts a lapsed lease: one setting
(TASKBEAT_LEASE_S, else TASKBEAT_STALE_AFTER_INTERVALS heartbeat intervals) for both."""

import json
import subprocess
import sys

import pytest

from app.cli.heartbeats import stale_after_s
from app.core.config import Settings


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("values", "interval_s", "expected_s"),
    [
        ({}, None, 6.0),  # 3 intervals of 2 s
        ({"heartbeat_interval_s": 0.5}, None, 1.5),
        ({"stale_after_intervals": 5}, None, 10.0),
        ({"stale_after_intervals": 5}, 1.0, 5.0),  # --interval-s stands in for the setting
        ({"lease_s": 9.0}, None, 9.0),  # the lease, as the service counts it
        ({"lease_s": 9.0}, 1.0, 9.0),
    ],
)
def test_stale_after_is_the_services_lease(
    values: dict[str, object], interval_s: float | None, expected_s: float
) -> None:
    configured = settings(**values)
    assert stale_after_s(configured, interval_s) == expected_s
    if interval_s is None:
        assert stale_after_s(configured, None) == configured.lease_duration_s


def test_fewer_than_two_intervals_is_refused() -> None:
    with pytest.raises(ValueError, match="stale_after_intervals"):
        settings(stale_after_intervals=1)


def monitor(serve_env: dict[str, str], *args: str, **env: str) -> dict[str, object]:
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "heartbeats", "--json", *args],
        env={**serve_env, **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report: dict[str, object] = json.loads(result.stdout)
    return report


def test_the_monitor_reads_the_settings_of_the_service(serve_env: dict[str, str]) -> None:
    plain = {"TASKBEAT_HEARTBEAT_INTERVAL_S": "0.5", "TASKBEAT_LEASE_S": ""}
    assert monitor(serve_env, **plain)["stale_after_s"] == 1.5
    assert monitor(serve_env, **plain, TASKBEAT_STALE_AFTER_INTERVALS="4")["stale_after_s"] == 2
    assert monitor(serve_env, "--interval-s", "1", **plain)["stale_after_s"] == 3
    leased = monitor(serve_env, **{**plain, "TASKBEAT_LEASE_S": "7.5"})
    assert leased == {
        "ok": True,
        "stale_after_s": 7.5,
        "tasks": [],
        "summary": "OK: 0 tasks running, every heartbeat within 7.5 s",
    }
