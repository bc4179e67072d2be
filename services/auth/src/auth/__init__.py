"""The auth service: credentials, password hashing, user tokens and their validation (docs/architecture.md §1, §3)."""
