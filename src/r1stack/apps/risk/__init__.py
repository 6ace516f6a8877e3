"""Transaction risk assessment: validated input, features computed in code, constrained model answers, reports."""
