"""order service example."""
