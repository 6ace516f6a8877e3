"""The `upstream` backend: generation done by OpenAI-compatible servers (vLLM, SGLang, another r1stack) behind
r1stack, with balancing, health checks, ejection, retries and a circuit breaker per replica."""
