"""Events: the seed's wire format, the transactional outbox and reliable consumers (seed §1.2, §3, §4.5)."""
