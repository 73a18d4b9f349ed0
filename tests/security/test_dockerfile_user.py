"""The image runs as an unprivileged user: in the Dockerfile's final stage a USER line names a non-root
user before CMD/ENTRYPOINT, and docker-compose does not override it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ROOT_USERS = {"root", "0"}


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per Dockerfile instruction; continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def runtime_user_problem(text: str) -> str | None:
    """Why the final stage would run as root, or None when it runs as a non-root user."""
    steps = instructions(text)
    starts = [i for i, (word, _) in enumerate(steps) if word == "FROM"]
    if not starts:
        return "no FROM"
    final = steps[starts[-1] :]
    user: str | None = None
    for word, args in final:
        if word == "USER":
            user = args.split(":")[0].strip()
        elif word in ("CMD", "ENTRYPOINT"):
            if user is None:
                return f"{word} runs before any USER line"
            if user in ROOT_USERS:
                return f"{word} runs as {user}"
    if user is None:
        return "no USER line in the final stage"
    if user in ROOT_USERS:
        return f"the final USER is {user}"
    if not any(word in ("CMD", "ENTRYPOINT") for word, _ in final):
        return "no CMD or ENTRYPOINT in the final stage"
    return None


def test_the_image_runs_as_a_non_root_user() -> None:
    assert runtime_user_problem((ROOT / "Dockerfile").read_text()) is None


def test_compose_does_not_run_a_service_as_root() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    for name, service in compose["services"].items():
        assert str(service.get("user", "artbandit")).split(":")[0] not in ROOT_USERS, name
        assert not service.get("privileged", False), name


@pytest.mark.parametrize(
    ("dockerfile", "problem"),
    [
        ('FROM python:3.11-slim\nCMD ["artbandit"]\n', "CMD runs before any USER line"),
        ('FROM python:3.11-slim\nUSER root\nCMD ["artbandit"]\n', "CMD runs as root"),
        ('FROM python:3.11-slim\nUSER 0:0\nCMD ["artbandit"]\n', "CMD runs as 0"),
        ('FROM b AS build\nUSER app\nFROM python:3.11-slim\nCMD ["x"]\n', "CMD runs before any USER line"),
        ('FROM python:3.11-slim\nCMD ["x"]\nUSER app\n', "CMD runs before any USER line"),
        ('FROM python:3.11-slim\nUSER app\nENTRYPOINT ["x"]\nUSER root\n', "the final USER is root"),
        ('FROM python:3.11-slim\nRUN useradd \\\n  app\nUSER app\nCMD ["x"]\n', None),
    ],
)
def test_the_check_can_fail(dockerfile: str, problem: str | None) -> None:
    assert runtime_user_problem(dockerfile) == problem
