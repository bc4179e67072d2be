"""Password hashing with Argon2id through pwdlib, run off the event loop.

Each hash or verify holds `argon2_memory_cost_kib` (19 MiB) while it runs, and asyncio's default thread pool runs
up to min(32, CPUs + 4) at once, counted from the node's CPUs, not the container's limit: a burst of logins could
take 600 MiB. `AUTH_PASSWORD_HASH_CONCURRENCY` bounds how many run at once; the others wait their turn.
"""

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
        self._slots = asyncio.Semaphore(settings.password_hash_concurrency)
        # Verified against when the email is unknown, so both failures cost the same time.
        self._decoy = self._hash.hash("decoy-password-for-unknown-users")

    async def hash(self, password: str) -> str:
        async with self._slots:
            return await asyncio.to_thread(self._hash.hash, password)

    async def verify(self, password: str, stored: str | None) -> tuple[bool, str | None]:
        """(matches, new hash or None); `stored=None` spends the same effort and never matches."""
        async with self._slots:
            ok, updated = await asyncio.to_thread(self._hash.verify_and_update, password, stored or self._decoy)
        return (ok and stored is not None), updated
