"""Django's PostgreSQL backend with psycopg's C timestamp loader (see base.py)."""
