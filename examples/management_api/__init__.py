"""management api example."""
