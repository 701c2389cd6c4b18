"""`python -m seqgen` runs the command line (and is what torchrun launches)."""

from .cli import main

main()
