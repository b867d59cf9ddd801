"""The operators' live dashboard of the rotation (page, JSON and actions)."""
