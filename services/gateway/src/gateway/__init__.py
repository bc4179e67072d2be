"""The gateway: the public RealWorld API composed from the auth, blog, user and comment services."""
