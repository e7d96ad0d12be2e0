"""durahub: a Dapr-compatible durable workflow engine written in Python."""

__version__ = "0.1.0"
