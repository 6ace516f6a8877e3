"""The `r1stack` command. Each command group lives in its own module and registers itself here."""

from __future__ import annotations

import sys

import typer

from r1stack.cli import apps, bench, engine_cmds, guard, kb, plan, quantize, search_proxy, serve
from r1stack.errors import UserError

app = typer.Typer(
    name="r1stack",
    help="Private deployment stack for DeepSeek-R1-class reasoning models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

for module in (bench, engine_cmds, serve, kb, search_proxy, guard, plan, apps, quantize):
    module.register(app)


def main() -> None:
    """Entry point: bad input ends in one line on stderr and exit code 2, never a traceback."""
    try:
        code = app(standalone_mode=False)  # typer.Exit(n) comes back as a return value here
        if isinstance(code, int) and code:
            sys.exit(code)
    except UserError as e:
        print(f"error: {e.message}", file=sys.stderr)
        sys.exit(2)
    except (typer.Abort, KeyboardInterrupt):
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as e:  # click's usage errors and friends
        import click

        if isinstance(e, click.exceptions.ClickException):
            e.show()
            sys.exit(2)
        raise


if __name__ == "__main__":
    main()
