"""async order api example."""
