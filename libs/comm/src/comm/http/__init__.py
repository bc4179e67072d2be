"""Synchronous service-to-service calls: one pooled client per downstream, breaker, retries."""
