"""ENVIRONMENT=production: a service refuses to start with a missing or development secret, naming it; local warns.

The processes are started as `make run` and the images start them (`python -m <service> ...`); the check runs
before the command, so `serve --help` is enough to see it without a server.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from comm.keys import development_key, encode_public_key
from comm.preflight import service_settings
from comm.settings import is_development_value, url_password_problem
from comm.testing import free_port, internal_token_keys

ROOT = Path(__file__).resolve().parents[1]
SERVICES = ("gateway", "auth", "blog", "user", "comment")
STRONG_SECRET = "x7Qp2Lr9Vt4Wm8Zs1Nc6Hb3Jd5Kf0Gy-strong"
STRONG = {
    **internal_token_keys(SERVICES),
    "RABBITMQ_URL": f"amqp://blog:{STRONG_SECRET}@localhost:5672/",
    **{f"{s.upper()}_DATABASE_URL": f"postgresql+asyncpg://{s}:{STRONG_SECRET}@localhost/{s}" for s in SERVICES},
    "AUTH_SIGNING_KEY_FILE": "/run/secrets/auth/signing-key.pem",
}


def _run(service: str, env: dict[str, str], tmp_path: Path, *command: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in STRONG and k != "ENVIRONMENT"}
    return subprocess.run(
        [sys.executable, "-m", service, *(command or ("serve", "--help"))],
        env={**clean, **env},
        cwd=tmp_path,  # auth must not leave a development key behind
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_production_without_its_internal_token_key_exits_non_zero_naming_it(tmp_path: Path) -> None:
    env = {**STRONG, "ENVIRONMENT": "production"}
    del env["BLOG_INTERNAL_TOKEN_KEY"]  # the development key, derived from the name, would sign
    done = _run("blog", env, tmp_path)
    assert done.returncode != 0
    assert "BLOG_INTERNAL_TOKEN_KEY is missing" in done.stderr
    assert "INTERNAL_TOKEN_PUBLIC_KEYS" not in done.stderr
    assert "BLOG_DATABASE_URL" not in done.stderr
    assert "RABBITMQ_URL" not in done.stderr


def test_production_accepting_a_development_key_exits_non_zero_naming_it(tmp_path: Path) -> None:
    env = {**STRONG, "ENVIRONMENT": "production"}
    development = encode_public_key(development_key("gateway").public_key())
    env["INTERNAL_TOKEN_PUBLIC_KEYS"] += f",gateway={development}"
    done = _run("user", env, tmp_path)
    assert done.returncode != 0
    assert "INTERNAL_TOKEN_PUBLIC_KEYS holds the development key of gateway" in done.stderr
    del env["INTERNAL_TOKEN_PUBLIC_KEYS"]
    done = _run("user", env, tmp_path)
    assert done.returncode != 0
    assert "INTERNAL_TOKEN_PUBLIC_KEYS is missing" in done.stderr


def test_a_malformed_key_exits_non_zero_naming_the_variable_not_the_value(tmp_path: Path) -> None:
    env = {**STRONG, "COMMENT_INTERNAL_TOKEN_KEY": "not-a-key-at-all"}
    done = _run("comment", env, tmp_path)
    assert done.returncode != 0
    assert "internal_token_key" in done.stderr.lower()
    assert "not-a-key-at-all" not in done.stderr


def test_production_names_every_weak_secret_of_auth(tmp_path: Path) -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    rabbitmq_url = _compose_default(compose["services"]["auth"]["environment"]["RABBITMQ_URL"])
    env = {**STRONG, "ENVIRONMENT": "production", "RABBITMQ_URL": rabbitmq_url}
    env["AUTH_DATABASE_URL"] = "postgresql+asyncpg://auth@localhost/auth"
    done = _run("auth", env, tmp_path)
    assert done.returncode != 0
    assert "RABBITMQ_URL has a development password" in done.stderr
    assert "AUTH_DATABASE_URL has no password" in done.stderr
    assert "INTERNAL_TOKEN" not in done.stderr


def test_production_auth_without_a_signing_key_exits_non_zero_naming_it(tmp_path: Path) -> None:
    """Migrations need no key (k8s runs them in an init container without it): serving does."""
    env = {**STRONG, "ENVIRONMENT": "production", "AUTH_LISTEN_PORT": str(free_port())}
    del env["AUTH_SIGNING_KEY_FILE"]
    done = _run("auth", env, tmp_path, "serve")
    assert done.returncode != 0
    assert "AUTH_SIGNING_KEY" in done.stderr
    assert not (tmp_path / ".dev").exists()  # no development key was generated


def test_local_warns_and_starts(tmp_path: Path) -> None:
    done = _run("gateway", {}, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "GATEWAY_INTERNAL_TOKEN_KEY is missing" in done.stderr
    assert "refused with ENVIRONMENT=production" in done.stderr


@pytest.mark.parametrize("service", SERVICES)
def test_strong_secrets_pass_and_the_defaults_do_not(service: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*STRONG, "ENVIRONMENT"):
        monkeypatch.delenv(name, raising=False)
    assert service_settings(service).weak_secrets()  # every default is a development value
    for name, value in STRONG.items():
        monkeypatch.setenv(name, value)
    assert service_settings(service).weak_secrets() == []


def _compose_default(value: str) -> str:
    """A compose value as it is without a `.env`: `${VAR:-default}` replaced by its default."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value)


def test_every_secret_compose_and_k8s_ship_is_a_development_value() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    for name, app in compose["services"].items():
        if name not in SERVICES:
            continue
        env = {**compose["x-app-env"], **app["environment"]}
        assert not {"INTERNAL_TOKEN_PUBLIC_KEYS", f"{name.upper()}_INTERNAL_TOKEN_KEY"} & set(env)  # development keys
        if name == "gateway":
            assert "RABBITMQ_URL" not in env  # it publishes and consumes nothing
        else:
            assert url_password_problem(_compose_default(env["RABBITMQ_URL"]))
        if (url := env.get(f"{name.upper()}_DATABASE_URL")) is not None:
            assert url_password_problem(_compose_default(url))
    assert is_development_value("change-me-to-a-long-random-value")  # the k8s base's placeholder
