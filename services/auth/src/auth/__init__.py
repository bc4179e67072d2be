"""The auth service: credentials, password hashing, user tokens and their validation (DESIGN §1, §3)."""
