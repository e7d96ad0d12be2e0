"""Durable storage behind one small interface."""
