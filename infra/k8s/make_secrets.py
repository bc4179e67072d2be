"""Write the secret files the kustomize `secretGenerator`s read: `make k8s-secrets` (docs/operations.md).

Nothing secret is committed: the files go to `infra/k8s/base/secrets/` (git-ignored) with random values, and the
generators in `infra/k8s/base/kustomization.yaml` turn them into one Secret per app plus the credentials the data
services need (a PostgreSQL role per service for CloudNativePG, a RabbitMQ user per service for the messaging
topology operator), so the passwords in the apps' URLs and the ones the roles and users get are the same by
construction. Each app also gets its own internal token key (comm.keys) and every app's public key, the public keys
in the Secret beside the private one (they are not secret, but both must change together when a key is rotated).
Credentials and keys are kept when they exist (rotate one: delete its file or line, run this again, apply); the
apps' files are derived from them on every run.

    python infra/k8s/make_secrets.py [--dir DIR] [--postgres-host postgres-rw] [--rabbitmq-host rabbitmq]
"""

import argparse
import secrets
import sys
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from comm.keys import decode_private_key, encode_private_key, format_public_keys, generate_key

HERE = Path(__file__).resolve().parent
SERVICES = ("auth", "blog", "user", "comment")  # the apps with a database and a broker connection
APPS = (*SERVICES, "gateway")
SIGNING_KEY = "auth-signing-key.pem"
INTERNAL_TOKEN_KEYS = "internal-token-keys.env"  # every app's private key, `<APP>_INTERNAL_TOKEN_KEY=...`


def role(service: str) -> str:
    """The PostgreSQL role that owns the service's database (`auth_app`, ...)."""
    return f"{service}_app"


def password() -> str:
    """256 random bits, URL-safe: it goes into database and broker URLs as it is."""
    return secrets.token_urlsafe(32)


def read_env(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if line and not line.startswith("#"))


def write_env(path: Path, values: dict[str, str]) -> None:
    path.write_text("".join(f"{key}={value}\n" for key, value in values.items()))
    path.chmod(0o600)


def credentials(folder: Path, name: str, username: str) -> dict[str, str]:
    """`<name>.env` (username, password), created with a random password unless it exists."""
    path = folder / f"{name}.env"
    if not path.exists():
        write_env(path, {"username": username, "password": password()})
    return read_env(path)


def signing_key(folder: Path) -> None:
    """Auth's ES256 key (EC P-256, PKCS#8 PEM), every auth replica signs with it."""
    path = folder / SIGNING_KEY
    if path.exists():
        return
    key = ec.generate_private_key(ec.SECP256R1())
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    path.chmod(0o600)


def internal_token_keys(folder: Path) -> dict[str, str]:
    """Each app's `<APP>_INTERNAL_TOKEN_KEY`, a new one for an app that has none in the file yet."""
    path = folder / INTERNAL_TOKEN_KEYS
    keys = read_env(path) if path.exists() else {}
    for app in APPS:
        keys.setdefault(f"{app.upper()}_INTERNAL_TOKEN_KEY", encode_private_key(generate_key()))
    write_env(path, keys)
    return keys


def generate(folder: Path, *, postgres_host: str, rabbitmq_host: str) -> None:
    """Every file the base's generators read, in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    signing_key(folder)
    keys = internal_token_keys(folder)
    public_keys = format_public_keys(
        (app, decode_private_key(keys[f"{app.upper()}_INTERNAL_TOKEN_KEY"]).public_key()) for app in APPS
    )
    identity = {app: {f"{app.upper()}_INTERNAL_TOKEN_KEY": keys[f"{app.upper()}_INTERNAL_TOKEN_KEY"]} for app in APPS}
    for service in SERVICES:
        database = credentials(folder, f"postgres-{service}", role(service))
        broker = credentials(folder, f"rabbitmq-{service}", service)
        write_env(
            folder / f"{service}.env",
            {
                **identity[service],
                "INTERNAL_TOKEN_PUBLIC_KEYS": public_keys,
                f"{service.upper()}_DATABASE_URL": (
                    f"postgresql+asyncpg://{database['username']}:{database['password']}@{postgres_host}:5432/{service}"
                ),
                "RABBITMQ_URL": f"amqp://{broker['username']}:{broker['password']}@{rabbitmq_host}:5672/",
            },
        )
    write_env(folder / "gateway.env", identity["gateway"])  # no database or broker credentials, no one to verify


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=HERE / "base" / "secrets")
    parser.add_argument("--postgres-host", default="postgres-rw", help="CloudNativePG's read-write Service")
    parser.add_argument("--rabbitmq-host", default="rabbitmq", help="the RabbitmqCluster's Service")
    args = parser.parse_args(argv)
    generate(args.dir, postgres_host=args.postgres_host, rabbitmq_host=args.rabbitmq_host)
    print(f"secrets in {args.dir}: kubectl apply -k infra/k8s/overlays/production", file=sys.stderr)


if __name__ == "__main__":
    main()
