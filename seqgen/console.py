"""The one console for people: stderr (stdout carries data only), through rich, honouring NO_COLOR."""

from __future__ import annotations

from rich.console import Console

console = Console(stderr=True)


def say(message: str, style: str | None = None) -> None:
    """One message for humans, on stderr; never wrapped, never parsed as markup."""
    console.print(message, style=style, markup=False, highlight=False, soft_wrap=True)
