"""The keys behind internal tokens (docs/architecture.md §3): each app signs with a private key of its own, and a
receiver verifies with the calling app's public key, so holding one app's key never lets anyone speak as another.

Ed25519 (RFC 8037's EdDSA for JOSE, which PyJWT implements): small keys, fast signatures, nothing to choose wrongly.
A key travels as the base64url of its 32 raw bytes (the JWK's `d` for a private key, `x` for a public one), one
line in an env file or a Secret:

- `<P>INTERNAL_TOKEN_KEY` (`GATEWAY_INTERNAL_TOKEN_KEY`, `BLOG_INTERNAL_TOKEN_KEY`, ...): the app's private key, a
  secret that only that app holds;
- `INTERNAL_TOKEN_PUBLIC_KEYS`: `name=key,name=key,...`, every app's public key (not a secret); a name may appear
  twice while its key is rotated (docs/operations.md "Rotate keys").

Without them an app signs with a development key derived from its name, and accepts any caller's development key,
so `make run`, compose and the tests need no keys set up; anyone can derive those keys, so `ENVIRONMENT=production`
refuses to start without real ones (CommSettings.weak_secrets). `python -m comm.keys gateway auth ...` prints a new
key for each app and the public key line (infra/k8s/make_secrets.py writes them for Kubernetes).
"""

import base64
import hashlib
import sys
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

PublicKeys = Mapping[str, Sequence[Ed25519PublicKey]]
_DEVELOPMENT_SEED = b"blog-platform development internal token key\0"


def generate_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def development_key(name: str) -> Ed25519PrivateKey:
    """The key anyone can derive for `name`: for development only."""
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(_DEVELOPMENT_SEED + name.encode()).digest())


@lru_cache(maxsize=64)
def development_public_key(name: str) -> Ed25519PublicKey:
    return development_key(name).public_key()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _raw(text: str) -> bytes:
    try:
        raw = base64.urlsafe_b64decode(text.strip() + "=" * (-len(text.strip()) % 4))
    except ValueError as exc:
        raise ValueError("not base64url") from exc
    if len(raw) != 32:
        raise ValueError(f"an Ed25519 key is 32 bytes, this one {len(raw)}")
    return raw


def encode_private_key(key: Ed25519PrivateKey) -> str:
    return _b64(key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()))


def encode_public_key(key: Ed25519PublicKey) -> str:
    return _b64(key.public_bytes(Encoding.Raw, PublicFormat.Raw))


def decode_private_key(text: str) -> Ed25519PrivateKey:
    """A private key from its base64url; ValueError when it is not one."""
    return Ed25519PrivateKey.from_private_bytes(_raw(text))


def decode_public_key(text: str) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(_raw(text))


def is_development_key(name: str, key: Ed25519PrivateKey | Ed25519PublicKey) -> bool:
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return encode_public_key(public) == encode_public_key(development_public_key(name))


def parse_public_keys(text: str) -> dict[str, tuple[Ed25519PublicKey, ...]]:
    """`name=key,name=key,...` as each name's keys; ValueError naming the entry that is wrong."""
    keys: dict[str, tuple[Ed25519PublicKey, ...]] = {}
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            continue
        name, sep, encoded = entry.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"{entry[:20]!r} is not name=key")
        try:
            key = decode_public_key(encoded)
        except ValueError as exc:
            raise ValueError(f"the key of {name.strip()!r}: {exc}") from exc
        keys[name.strip()] = (*keys.get(name.strip(), ()), key)
    return keys


def format_public_keys(keys: Iterable[tuple[str, Ed25519PublicKey]]) -> str:
    return ",".join(f"{name}={encode_public_key(key)}" for name, key in keys)


def main(names: Sequence[str]) -> None:
    """Print a new private key per app (as its `<P>INTERNAL_TOKEN_KEY`) and the `INTERNAL_TOKEN_PUBLIC_KEYS` line."""
    if not names:
        sys.exit("usage: python -m comm.keys APP... (e.g. gateway auth blog user comment)")
    keys = {name: generate_key() for name in names}
    for name, key in keys.items():
        print(f"{name.upper()}_INTERNAL_TOKEN_KEY={encode_private_key(key)}")
    print(f"INTERNAL_TOKEN_PUBLIC_KEYS={format_public_keys((n, k.public_key()) for n, k in keys.items())}")


if __name__ == "__main__":
    main(sys.argv[1:])
