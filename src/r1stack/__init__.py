"""r1stack: a private deployment stack for DeepSeek-R1-class reasoning models."""

__version__ = "0.1.0"

__all__ = ["LLM", "SamplingParams"]


def __getattr__(name: str):
    # Lazy, so that `import r1stack` (the CLI, the search proxy) does not pay for torch.
    if name == "LLM":
        from r1stack.engine.llm import LLM

        return LLM
    if name == "SamplingParams":
        from r1stack.engine.sampling_params import SamplingParams

        return SamplingParams
    raise AttributeError(name)
