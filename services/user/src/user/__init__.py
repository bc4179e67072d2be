"""The user service: profiles, follows and comment counts, kept in step with auth and comment by events."""
