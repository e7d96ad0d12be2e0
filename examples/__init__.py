"""Example FastAPI apps built on the official Dapr workflow SDK, runnable against durahub or Dapr."""
