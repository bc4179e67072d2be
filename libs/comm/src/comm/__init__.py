"""The blog platform's shared communication library."""
