"""The OpenAI-compatible HTTP server: routes, request/response models, reasoning parser, auth, TLS, metrics."""
