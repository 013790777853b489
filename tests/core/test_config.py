"""Settings: every key documented in .env.example, bad values refused with a clear message."""

import subprocess
import sys
from pathlib import Path

import pytest

from app.core.config import Settings

ENV_EXAMPLE = Path(__file__).resolve().parents[2] / ".env.example"


def documented() -> dict[str, str]:
    entries = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            entries[key] = value
    return entries


def test_env_example_lists_every_setting_with_its_default() -> None:
    expected = {
        f"TASKBEAT_{name.upper()}": "" if field.default is None else str(field.default)
        for name, field in Settings.model_fields.items()
    }
    assert documented() == expected
    for name, field in Settings.model_fields.items():
        assert field.description, f"{name} has no description"


def test_env_example_is_itself_a_valid_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in documented():
        monkeypatch.delenv(key, raising=False)
    settings = Settings(_env_file=ENV_EXAMPLE)  # type: ignore[call-arg]
    assert settings.redis_url is None
    assert settings.lease_s is None
    assert settings.heartbeat_interval_s == 2.0
    assert settings.poll_max_retries == 5
    assert settings.task_timeout_s == 3600
    assert settings.lease_duration_s == 6.0


@pytest.mark.parametrize(
    ("env", "mentions"),
    [
        ({"TASKBEAT_POLL_INTERVAL_S": "soon"}, "TASKBEAT_POLL_INTERVAL_S"),
        ({"TASKBEAT_MAX_ACTIVE": "0"}, "TASKBEAT_MAX_ACTIVE"),
        ({"TASKBEAT_DATABASE_URL": "mysql://x"}, "database_url"),
        ({"TASKBEAT_LEASE_S": "1", "TASKBEAT_HEARTBEAT_INTERVAL_S": "2"}, "lease_s"),
    ],
)
def test_bad_settings_stop_the_service_with_a_clear_message(
    env: dict[str, str], mentions: str, tmp_path: Path
) -> None:
    assert_start_refused(env, mentions, tmp_path)


def assert_start_refused(env: dict[str, str], mentions: str, cwd: Path) -> None:
    """`taskbeat serve` exits at once with a message (no traceback) that says `mentions`."""
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "serve"],
        env={"PATH": "/usr/bin:/bin", **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "bad configuration" in result.stderr
    assert mentions in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


GOOD_TOML = """\
poll_interval_s = 0.5

[algorithms.hello]
max_active = 3
retry_on = ["lost"]
"""


def test_the_config_file_sets_settings_and_policies_below_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "taskbeat.toml"
    config.write_text(GOOD_TOML)
    monkeypatch.setenv("TASKBEAT_CONFIG_FILE", str(config))
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.poll_interval_s == 0.5
    hello = settings.policy_of("hello")
    assert (hello.max_active, hello.retry_on, hello.poll_interval_s) == (3, ("lost",), 0.5)
    monkeypatch.setenv("TASKBEAT_POLL_INTERVAL_S", "2")  # the environment wins over the file
    assert Settings(_env_file=None).poll_interval_s == 2.0  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("text", "mentions"),
    [
        ("[algorithms.hello]\nmax_active = 3\npriority = = 1\n", "line 3"),
        ("poll_interval_s = 1\nno_such_setting = 2\n", "line 2: unknown setting 'no_such_setting'"),
        ("[algorithms.hello]\nmax_active = 3\n\n[algorithms.other]\npriority = 12\n", "line 5"),
        ('[schedules.nightly]\nalgorithm = "hello"\ncron = "61 * * * *"\n', "line 3"),
        (
            '[schedules.nightly]\nalgorithm = "hello"\ncron = "@daily"\ntimezone = "Mars/Base"\n',
            "line 4: schedules.nightly.timezone",
        ),
    ],
)
def test_a_broken_config_file_stops_the_start_naming_the_line(
    text: str, mentions: str, tmp_path: Path
) -> None:
    config = tmp_path / "taskbeat.toml"
    config.write_text(text)
    assert_start_refused({"TASKBEAT_CONFIG_FILE": str(config)}, mentions, tmp_path)
