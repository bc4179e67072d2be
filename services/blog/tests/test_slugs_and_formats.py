"""Unit cases: slugs from titles, and the timestamp format RealWorld clients need."""

from datetime import UTC, datetime, timedelta, timezone

import pytest

from blog.schemas import PostIn
from blog.slugs import slugify, with_suffix
from comm.timestamps import format_api_timestamp


@pytest.mark.parametrize(
    ("title", "slug"),
    [
        ("How to train your dragon", "how-to-train-your-dragon"),
        ("  Héllo,   World! ", "hello-world"),
        ("Crème brûlée 2024", "creme-brulee-2024"),
        ("Привет, мир й", "привет-мир-й"),
        ("中文标题", "中文标题"),
        ("C++ & Rust_vs_Go", "c-rust-vs-go"),
        ("!!!", "post"),
        ("", "post"),
    ],
)
def test_slugify(title: str, slug: str) -> None:
    assert slugify(title) == slug


def test_long_titles_are_cut_at_a_word_boundary() -> None:
    slug = slugify("word " * 60)
    assert len(slug) <= 100
    assert slug.endswith("word")
    assert slugify("x" * 300) == "x" * 100


def test_suffixes_differ() -> None:
    assert len({with_suffix("a") for _ in range(50)}) == 50
    assert with_suffix("title").startswith("title-")


@pytest.mark.parametrize(
    ("moment", "text"),
    [
        (datetime(2026, 11, 29, 12, 0, 0, tzinfo=UTC), "2026-11-29T12:00:00.000Z"),
        (datetime(2026, 11, 29, 12, 0, 0, 123456, tzinfo=UTC), "2026-11-29T12:00:00.123Z"),
        (datetime(2026, 11, 29, 13, 0, 0, 999999, tzinfo=timezone(timedelta(hours=1))), "2026-11-29T12:00:00.999Z"),
    ],
)
def test_timestamps_always_carry_milliseconds_and_z(moment: datetime, text: str) -> None:
    assert format_api_timestamp(moment) == text


def test_tag_lists_are_stripped_deduplicated_and_sorted() -> None:
    post = PostIn.model_validate({"title": " T ", "description": "d", "body": "b", "tagList": ["b", " a", "b ", "B"]})
    assert post.tag_list == ["B", "a", "b"]
    assert post.title == "T"
