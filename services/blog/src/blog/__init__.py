"""The blog service: posts, drafts and publishing, categories and favorites (docs/architecture.md §1)."""
