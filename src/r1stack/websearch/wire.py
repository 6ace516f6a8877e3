"""Names both ends of the gRPC wire agree on, beyond the .proto file."""

# Trailing metadata on every status the proxy itself sends, so that a client can tell "the proxy said no"
# (pass its message on) from "no proxy answered" (say which address could not be reached).
ORIGIN_KEY = "r1stack-origin"
ORIGIN_VALUE = "search-proxy"
