"""Print RabbitMQ password hashes for definitions.json (`rabbit_password_hashing_sha256`), one per argument.

    python infra/rabbitmq/password_hash.py PASSWORD...

The format RabbitMQ stores and imports: base64 of a random 4-byte salt followed by SHA-256(salt + UTF-8 password).
Put each printed hash into its user's `password_hash` in infra/rabbitmq/definitions.json and the password into the
URL of the app that logs in as that user (docs/operations.md, "Rotate keys").
"""

import base64
import hashlib
import secrets
import sys


def password_hash(password: str, *, salt: bytes | None = None) -> str:
    """`password`'s salted SHA-256 hash as RabbitMQ writes it."""
    salt = secrets.token_bytes(4) if salt is None else salt
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def matches(password: str, stored: str) -> bool:
    """Whether `stored` (a definitions.json `password_hash`) is the hash of `password`."""
    salt = base64.b64decode(stored)[:4]
    return secrets.compare_digest(password_hash(password, salt=salt), stored)


if __name__ == "__main__":
    for argument in sys.argv[1:]:
        print(password_hash(argument))
