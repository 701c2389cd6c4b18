"""Errors a user can act on. The CLI prints their message as one line and exits with `exit_code`."""


class SeqgenError(Exception):
    """Base class: something went wrong that is not a bug in seqgen."""

    exit_code = 1


class UsageError(SeqgenError):
    """An option or argument is invalid (exit status 2, like any command-line usage error)."""

    exit_code = 2


class DataError(SeqgenError):
    """The training data or a prime cannot be used as given."""


class CheckpointError(SeqgenError):
    """A checkpoint or state file is missing, damaged, or not one of ours."""


class TrainingError(SeqgenError):
    """Training cannot go on (for example, the loss became NaN)."""


class MissingPackage(SeqgenError):
    """An optional feature needs a package that is not installed (not a usage error: the command was right)."""
