"""Pieces of r1stack that run inside other serving systems (vLLM's workers), loaded by those systems."""
