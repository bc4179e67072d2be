"""Password hashing with Argon2id through pwdlib, run off the event loop."""

import asyncio

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from auth.settings import AuthSettings


class Passwords:
    """Hash and verify passwords; a verify also tells when the stored hash needs the current parameters."""

    def __init__(self, settings: AuthSettings) -> None:
        hasher = Argon2Hasher(
            time_cost=settings.argon2_time_cost,
            memory_cost=settings.argon2_memory_cost_kib,
            parallelism=settings.argon2_parallelism,
        )
        self._hash = PasswordHash((hasher,))
        # Verified against when the email is unknown, so both failures cost the same time.
        self._decoy = self._hash.hash("decoy-password-for-unknown-users")

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self._hash.hash, password)

    async def verify(self, password: str, stored: str | None) -> tuple[bool, str | None]:
        """(matches, new hash or None); `stored=None` spends the same effort and never matches."""
        ok, updated = await asyncio.to_thread(self._hash.verify_and_update, password, stored or self._decoy)
        return (ok and stored is not None), updated
