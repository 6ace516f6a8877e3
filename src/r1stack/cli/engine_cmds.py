"""`r1stack models | pull | generate | chat`: the model store and the engine from a terminal."""

from __future__ import annotations

import sys

import typer
from rich.console import Console
from rich.table import Table

from r1stack.config import get_settings

out = Console(width=None if sys.stdout.isatty() else 200)  # pipes get whole rows, not 80 columns
err = Console(stderr=True)


def register(app: typer.Typer) -> None:
    app.command("models")(models)
    app.command("pull")(pull)
    app.command("generate")(generate)
    app.command("chat")(chat)


def models() -> None:
    """List the catalogue and what is installed under the data directory."""
    from r1stack.engine.store import CATALOGUE, installed_path

    data_dir = get_settings().data_dir
    table = Table(title=f"models ({data_dir / 'models'})")
    for col in ("name", "parameters", "reasoning", "source", "installed", "note"):
        table.add_column(col)
    for e in CATALOGUE.values():
        path = installed_path(e.name, data_dir)
        table.add_row(e.name, e.params, "yes" if e.reasoning else "", e.source, "yes" if path else "", e.note)
    out.print(table)


def pull(name: str = typer.Argument(..., help="a catalogue name (see `r1stack models`)")) -> None:
    """Install a catalogue model under the data directory."""
    from r1stack.engine.store import pull as do_pull

    path = do_pull(name, get_settings().data_dir)
    err.print(f"[green]ready:[/] {name} at {path}")


def _engine_options(model: str | None, dtype: str | None, max_model_len: int | None):
    from r1stack.engine.config import EngineArgs
    from r1stack.engine.store import CATALOGUE
    from r1stack.engine.store import pull as do_pull

    settings = get_settings()
    args = EngineArgs.from_settings(settings, model=model, dtype=dtype, max_model_len=max_model_len)
    if args.model in CATALOGUE and args.model == settings.model:
        do_pull(args.model, settings.data_dir)  # the default model is installed on first use
    return args


def _params(max_tokens: int, temperature: float, top_p: float, seed: int | None):
    from r1stack.engine.sampling_params import SamplingParams

    return SamplingParams(max_tokens=max_tokens, temperature=temperature, top_p=top_p, seed=seed)


def generate(
    prompt: str = typer.Argument(..., help="the prompt text ('-' reads stdin)"),
    model: str = typer.Option(None, "--model", "-m", help="catalogue name or local path"),
    max_tokens: int = typer.Option(128, "--max-tokens"),
    temperature: float = typer.Option(0.0, "--temperature"),
    top_p: float = typer.Option(1.0, "--top-p"),
    seed: int = typer.Option(None, "--seed"),
    dtype: str = typer.Option(None, "--dtype"),
    max_model_len: int = typer.Option(None, "--max-model-len"),
) -> None:
    """Complete one prompt and print the text."""
    from r1stack.engine.llm import LLM

    if prompt == "-":
        prompt = sys.stdin.read()
    params = _params(max_tokens, temperature, top_p, seed)
    args = _engine_options(model, dtype, max_model_len)
    llm = LLM(**vars(args))
    out.print(llm.generate(prompt, params)[0].outputs[0].text, markup=False, highlight=False)


def chat(
    model: str = typer.Option(None, "--model", "-m", help="catalogue name or local path"),
    max_tokens: int = typer.Option(512, "--max-tokens"),
    temperature: float = typer.Option(0.6, "--temperature"),
    top_p: float = typer.Option(0.95, "--top-p"),
    seed: int = typer.Option(None, "--seed"),
    system: str = typer.Option(None, "--system", help="a system prompt"),
    dtype: str = typer.Option(None, "--dtype"),
) -> None:
    """Talk to the model in the terminal; tokens stream, R1 reasoning shows dimmed and apart."""
    import asyncio

    from r1stack.cli.chat_loop import run_chat

    args = _engine_options(model, dtype, None)
    asyncio.run(run_chat(args, _params(max_tokens, temperature, top_p, seed), system))
