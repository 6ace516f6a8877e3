"""The native inference engine: tokens in, tokens out."""
