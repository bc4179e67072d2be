"""The comment service: comments, their moderation, the cascade when a post is deleted (docs/architecture.md §1, §4)."""
