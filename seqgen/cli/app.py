"""The typer app and what every command shares: the stderr console, the root options, error
handling (one line, the right exit status) and the wording of library errors as flags."""

from __future__ import annotations

import os
import re
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import typer

from .. import __version__
from ..console import console, say
from ..errors import SeqgenError, UsageError

__all__ = ["app", "console", "say", "as_flags", "flagged", "open_output", "main"]
app = typer.Typer(
    add_completion=True,
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    help="Train a recurrent network (LSTM, GRU, Elman) on a sequence and generate from it.",
)


# The library names a parameter in backquotes (`top_k`, `SineConfig.noise`); the command line
# names the flag that sets it. Most flags are the parameter's name with dashes.
FLAG_NAMES = {
    "SineConfig.waves": "--sine-waves",
    "SineConfig.length": "--sine-length",
    "SineConfig.noise": "--sine-noise",
}
# Parameters the command line takes as positional arguments, named as its help names them.
ARGUMENTS = {"data": "DATA"}
PARAMETER = re.compile(r"`([A-Za-z_][\w.]*)`")


def as_flags(message: str, flags: set[str] | None = None) -> str:
    """A library message worded for the command line: each `parameter` becomes its --flag. With
    `flags` (the options of the command that failed), a parameter that command has no flag for
    is named in plain words: a message never points at an option the user cannot give."""

    def flag(match: re.Match) -> str:
        name = match[1]
        if name in ARGUMENTS:
            return ARGUMENTS[name]
        option = FLAG_NAMES.get(name) or "--" + name.rsplit(".", 1)[-1].replace("_", "-")
        if flags is None or option in flags:
            return option
        return name.rsplit(".", 1)[-1].replace("_", " ")

    return PARAMETER.sub(flag, message)


@contextmanager
def flagged():
    """Errors of library code that words them in parameters, raised as the command line words
    them (in flags), where the command's own checks are done by the library."""
    try:
        yield
    except SeqgenError as e:
        e.args = (as_flags(str(e)),)
        raise


def open_output(path: Optional[Path], line_flush: bool = False):
    """--output's file (written whole at the end), or stdout as the data comes."""
    from ..output import FileOutput, StreamWriter

    class Flagged(FileOutput):
        def __exit__(self, *exc):
            with flagged():
                return super().__exit__(*exc)

    return Flagged(path) if path is not None else StreamWriter(sys.stdout, line_flush)


def option(default, help: str, *names: str, **more):
    """A typer option on one line: its default, its help, any other names (`-o`, `--x/--no-x`)."""
    return typer.Option(default, *names, help=help, **more)


def check_seed(value: Optional[int]) -> Optional[int]:
    # NumPy's generators refuse negative seeds and torch's refuse ones past 64 bits: say so in one line.
    if value is not None and not 0 <= value < 2**63:
        raise UsageError(f"--seed must be a whole number from 0 to {2**63 - 1}, got {value}")
    return value


def _version(value: bool) -> None:
    if value:
        print(f"seqgen {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
    debug: bool = typer.Option(False, "--debug", help="Show a full traceback on errors (or set SEQGEN_DEBUG=1)."),
) -> None:
    if debug:
        os.environ["SEQGEN_DEBUG"] = "1"


DURATION = re.compile(r"^\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*(?:(\d+(?:\.\d+)?)s?)?\s*$")


def parse_duration(text: str, flag: str = "--max-time") -> float:
    """'90s', '5m', '1h30m', '1.5h' or a plain number of seconds -> seconds."""
    match = DURATION.match(text)
    if not text.strip() or not match or not any(match.groups()):
        raise UsageError(f"{flag} {text!r} is not a duration; write it like 90s, 5m, 1h30m or 300")
    hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    total = hours * 3600 + minutes * 60 + seconds
    if total <= 0:
        raise UsageError(f"{flag} must be longer than zero")
    return total


# --------------------------------------------------------------------------------------------
def main() -> None:
    """Entry point: run the app, turning every mistake into one line on stderr."""
    try:  # typer 0.29 and newer carry their own copy of click, and raise its exceptions
        from typer._click import exceptions as click
    except ImportError:
        from click import exceptions as click

    from ..output import PipeClosed

    if len(sys.argv) <= 1:
        sys.argv.append("--help")  # a bare `seqgen` asks what there is
    try:
        code = app(standalone_mode=False)
    except SeqgenError as e:
        if os.environ.get("SEQGEN_DEBUG"):
            import traceback

            traceback.print_exc()  # and still the exit status a script would see without --debug
        say(f"seqgen: error: {as_flags(str(e), command_flags(sys.argv))}", style="red")
        sys.exit(e.exit_code)
    except click.UsageError as e:  # an unknown option, a missing argument, a bad value...
        where = e.ctx.command_path if e.ctx is not None else _command_path(sys.argv)
        say(f"seqgen: error: {e.format_message()} (see '{where} --help')", style="red")
        sys.exit(2)
    except click.ClickException as e:
        say(f"seqgen: error: {e.format_message()}", style="red")
        sys.exit(e.exit_code)
    except PipeClosed:
        sys.exit(0)  # the reader has all it wanted (`| head`): the command did its work
    except (KeyboardInterrupt, typer.Abort):
        say("seqgen: interrupted")
        sys.exit(130)
    except Exception as e:
        if not _lost_peer(e):
            raise
        # Another rank failed first and said why; this one only lost its connection to it.
        say(f"seqgen: error: rank {os.environ.get('RANK')} stopped: another process of this run failed", style="red")
        sys.exit(1)
    if isinstance(code, int) and code:
        sys.exit(code)


def _command_path(argv: list[str]) -> str:
    """`seqgen COMMAND` for the command being parsed. Some parser errors (an option's missing
    value) come without their context, and the root's help would not list the command's options."""
    names = {c.name or c.callback.__name__.replace("_", "-") for c in app.registered_commands if c.callback}
    command = next((arg for arg in argv[1:] if not arg.startswith("-")), None)
    return f"seqgen {command}" if command in names else "seqgen"


def command_flags(argv: list[str]) -> set[str] | None:
    """Every --option of the command named on `argv` (None when no command is)."""
    import typer.main

    group = typer.main.get_command(app)
    name = next((arg for arg in argv[1:] if not arg.startswith("-")), None)
    command = getattr(group, "commands", {}).get(name)
    if command is None:
        return None
    return {opt for param in command.params for opt in (*param.opts, *param.secondary_opts) if opt.startswith("--")}


def _lost_peer(error: Exception) -> bool:
    """Whether a rank's error is gloo's report of a peer process that went away."""
    from ..train.distributed import launched

    text = str(error)
    return launched() and ("Connection closed by peer" in text or "Connection reset by peer" in text)
