"""Deployment facts and plans: which model fits which hardware, why, and how to launch it (no engine import)."""
