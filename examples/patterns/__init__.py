"""patterns example."""
