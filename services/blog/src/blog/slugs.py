"""Slugs: readable, URL-safe names derived from titles; uniqueness is the database's job (see service)."""

import re
import secrets
import unicodedata

MAX_BASE_LENGTH = 100
_WORD = re.compile(r"[^\W_]+")  # runs of letters and digits, in any script


def slugify(text: str, *, fallback: str = "post") -> str:
    """`"Héllo, World!"` -> `"hello-world"`; Latin accents dropped, other scripts kept, at most 100 characters."""
    slug = "-".join(_WORD.findall(_strip_latin_accents(text).lower()))
    if len(slug) > MAX_BASE_LENGTH:
        slug = slug[:MAX_BASE_LENGTH]
        # Cut at the last word boundary, unless that would leave almost nothing.
        slug = slug.rsplit("-", 1)[0] if slug.rfind("-") > MAX_BASE_LENGTH // 2 else slug
    return slug or fallback


def _strip_latin_accents(text: str) -> str:
    """Drop the accents of Latin letters only: "é" -> "e", while "й" stays "й" (its breve is part of the letter)."""
    kept: list[str] = []
    for char in unicodedata.normalize("NFKD", text):
        if unicodedata.category(char) == "Mn" and kept and kept[-1].isascii():
            continue
        kept.append(char)
    return unicodedata.normalize("NFKC", "".join(kept))


def with_suffix(base: str) -> str:
    """`base` plus a short random suffix, for when `base` is taken."""
    return f"{base}-{secrets.token_hex(3)}"
