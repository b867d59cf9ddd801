"""Embedded PostgreSQL, Redis and Kafka for dev and tests, and the dev launcher."""
