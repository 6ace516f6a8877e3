"""HTTP routes, one module per area; kb.py and guard.py belong to those services and are mounted by app.py."""
