"""The blog platform's shared communication library (seed §2, §3, §5, §6)."""
