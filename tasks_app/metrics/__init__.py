"""/metrics for Prometheus: the collector, who may read it, and the route."""
