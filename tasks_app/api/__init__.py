"""The REST API (DRF) under /api/, the seed-compatible routes and the health check."""
