"""The blog service: posts, drafts and publishing, categories and favorites (DESIGN §1)."""
