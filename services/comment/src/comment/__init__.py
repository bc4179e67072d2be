"""The comment service: comments on posts, their moderation, and the cascade when a post is deleted (DESIGN §1, §4)."""
