"""purchase approval example."""
