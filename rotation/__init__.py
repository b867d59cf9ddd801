"""Framework-free rotation: leases, members, lanes, the slice loop, Kafka wrappers.

Nothing here imports Django: configuration arrives as frozen dataclasses and
database work as injected callables, so the package is testable with plain
Redis and Kafka.
"""
