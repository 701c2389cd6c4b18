"""Run planning: from data and what the user asked (or nothing) to the finished plan of a training run.

`plan_run` is the one place where a run's measured defaults are chosen (`config.defaults_for`),
a trending series is differenced (`transforms.with_target`), calendar inputs are added, a short
series' window is fitted, and a resumed run takes back what it began with. `seqgen train`, the
library's documented path and `torchrun` all go through it, so the same options and seed give the
same model whichever door a user comes in by; `Trainer.from_plan` then runs the plan as it is.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from ..checkpoint import Checkpoint, load_checkpoint
from ..config import SMALL_SERIES, ModelConfig, TrainConfig, defaults_for, fitted_window, from_dict
from ..data import Dataset, SineConfig, load_data
from ..data.calendar import CALENDARS, with_calendar
from ..data.load import TableOptions, TextOptions, stored_data_path
from ..data.transforms import with_target
from ..errors import UsageError
from ..kinds import kind_named

# A run's limits: any one given replaces all the stored or default ones (`steps` 5000 means 5000
# steps, not "5000 steps unless the default time limit comes first").
LIMITS = ("steps", "epochs", "max_time")
# What the data decides about a model, never the user: its vocabulary, calendar and channels.
FROM_DATA = ("vocab_size", "calendar", "channels")
MODEL_OPTIONS = tuple(f.name for f in fields(ModelConfig) if f.name not in FROM_DATA)
TRAIN_OPTIONS = tuple(f.name for f in fields(TrainConfig))
# Options that mean something for numeric series only.
SERIES_ONLY = ("input_noise", "free_run", "head")


@dataclass(frozen=True)
class RunPlan:
    """Everything a training run needs, decided: the dataset as the model reads it, the model and
    training configurations with every default filled in, where the checkpoint goes, the run being
    resumed (if any), notes for the user on defaults the data changed, and warnings of what was
    asked for and not done (said even when progress is not shown)."""

    data: Dataset
    model: ModelConfig
    train: TrainConfig
    out: Path
    resume: Checkpoint | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)
    warnings: tuple[str, ...] = field(default_factory=tuple)


def plan_run(
    data: str | Path | None = None,
    *,
    out: str | Path | None = None,
    resume: str | Path | Checkpoint | None = None,
    force: bool = False,
    kind: str = "auto",
    encoding: str = "utf-8",
    val_fraction: float = 0.1,
    cache_dir: str | Path | None = None,
    tokens: str | None = None,
    vocab_size: int | None = None,
    target: str | None = None,
    calendar: str | None = None,
    time_column: str | None = None,
    columns: list[str] | None = None,
    id_column: str | None = None,
    fill: str = "error",
    joint: bool = False,
    sine: SineConfig | None = None,
    **options: Any,
) -> RunPlan:
    """The finished plan of a training run on `data` (a text or series file, "-" for standard
    input, None for the built-in sine waves), as `seqgen train` makes it with the same options.

    `options` are the model's (cell, layers, hidden, embed, dropout, head) and the run's (any
    field of `TrainConfig`: steps, max_time in seconds, seed, threads...); those not given are the
    measured defaults for this data, or a resumed run's own. Everything is checked before any data
    is read; a checkpoint already at `out` is an error unless `force` (or it is the run resumed).
    """
    model_opts, train_opts = _split_options(options)
    sine = sine or SineConfig()
    _check_before_reading(data, resume, calendar, sine, joint, columns, model_opts, train_opts)
    text_as = _text_options(tokens, vocab_size, resume)
    checkpoint = load_checkpoint(resume) if isinstance(resume, (str, Path)) else resume
    table = TableOptions(time_column, columns, id_column, fill, joint=joint)
    dataset = _read_data(
        data, checkpoint, kind, encoding, val_fraction, cache_dir, sine, table, text_as, train_opts.get("seed")
    )
    _check_kind(dataset, target, calendar, text_as, model_opts, train_opts)
    warnings: list[str] = []
    if dataset.kind == "series":
        dataset = _as_model_reads(dataset, checkpoint, target, calendar, warnings)
    model_config, train_config = _configs(dataset, checkpoint, model_opts, train_opts)
    default_out = Path(checkpoint.path) if checkpoint is not None and checkpoint.path else None
    out = Path(out) if out is not None else default_out or Path("checkpoints") / f"{dataset.name}.safetensors"
    _check_overwrite(out, checkpoint, force)
    note = sized_note(dataset, model_config, train_config) if checkpoint is None else None
    return RunPlan(dataset, model_config, train_config, out, checkpoint, (note,) if note else (), tuple(warnings))


def _split_options(options: dict[str, Any]) -> tuple[dict, dict]:
    """The model's options and the run's, each checked on its own defaults; an unknown name is an error."""
    unknown = [name for name in options if name not in MODEL_OPTIONS + TRAIN_OPTIONS]
    if unknown:
        raise UsageError(
            f"`{unknown[0]}` is not an option of a training run; the model's are "
            f"{', '.join(MODEL_OPTIONS)}, the run's any field of TrainConfig"
        )
    given = {name: value for name, value in options.items() if value is not None}
    model_opts = {k: v for k, v in given.items() if k in MODEL_OPTIONS}
    train_opts = {k: v for k, v in given.items() if k in TRAIN_OPTIONS}
    replace(ModelConfig(), **model_opts).check()
    replace(TrainConfig(), **train_opts).check()
    return model_opts, train_opts


def _check_before_reading(
    data, resume, calendar, sine: SineConfig, joint: bool, columns, model_opts: dict, train_opts: dict
) -> None:
    """Mistakes that reading the data would only delay."""
    if "threads" in train_opts:
        from .threads import check_threads

        check_threads(train_opts["threads"])  # more than this machine's cores
    if calendar is not None and calendar not in CALENDARS:
        raise UsageError(f"`calendar` must be one of {', '.join(CALENDARS)}, got {calendar!r}")
    sine.check()
    if joint and data is None and resume is None:
        raise UsageError(
            "`joint` models the value columns of a CSV table together; give `data` (the built-in sine "
            "waves have one value a step)"
        )
    if columns is not None and not columns:
        raise UsageError("`columns`: give the names of one or more columns")


def _text_options(tokens: str | None, vocab_size: int | None, resume) -> TextOptions | None:
    """`tokens` and `vocab_size`, checked before any data is read; None when neither is given
    (characters, or a resumed run's own tokens)."""
    from ..data.tokenizers import check_tokens, require_tokenizers

    if tokens is None and vocab_size is None:
        return None
    if resume is not None and vocab_size is not None:
        raise UsageError(f"`vocab_size`: a resumed run keeps the tokens of {_name(resume)}")
    check_tokens(tokens or "char", vocab_size)
    if tokens == "bpe" and resume is None:
        require_tokenizers()  # before reading a large text, not after
    return TextOptions(tokens or "char", vocab_size)


def _name(resume) -> str:
    return str(resume.path if isinstance(resume, Checkpoint) else resume)


def _read_data(
    data,
    checkpoint: Checkpoint | None,
    kind: str,
    encoding: str,
    val_fraction: float,
    cache_dir,
    sine: SineConfig,
    table: TableOptions,
    text_as: TextOptions | None,
    seed: int | None,
) -> Dataset:
    """The data as given; for a resumed run, by default the data it trained on, read as it was."""
    if data is None and checkpoint is not None:
        data = resume_source(checkpoint)
    if data is None and encoding.lower().replace("_", "-") not in ("utf-8", "utf8"):
        raise UsageError("`encoding` says how to read `data`; the built-in sine waves are not read from a file")
    data_seed = seed if seed is not None else (checkpoint.meta["train"]["seed"] if checkpoint else 0)
    if checkpoint and checkpoint.described.is_sine:
        # A checkpoint from before scale_each existed trained on unscaled waves; a resumed run
        # goes on with the waves it began with.
        stored = {"scale_each": False, **checkpoint.described.source}
        if data is None:
            sine = from_dict(SineConfig, {k: v for k, v in stored.items() if k != "type"})
        else:
            sine = replace(sine, scale_each=stored["scale_each"])
    if checkpoint and not table.given and "columns" in checkpoint.described.source:
        # A resumed run reads its table as it began, whatever its first lines look like.
        table = replace(TableOptions.from_source(checkpoint.described.source), stored=False)
    text_as = _resumed_tokens(checkpoint, text_as)
    return load_data(
        None if data is None else str(data),
        kind=kind,
        encoding=encoding,
        val_fraction=val_fraction,
        sine=sine,
        seed=data_seed,
        cache_dir=cache_dir,
        table=table,
        tokens=text_as.tokens,
        vocab_size=text_as.vocab_size,
        tokenizer=text_as.tokenizer,
    )


def resume_source(checkpoint: Checkpoint) -> str | None:
    """The data a resumed run trained on, when it is not given again (None for sine waves)."""
    source = checkpoint.described.source
    if source.get("type") != "file":
        return None
    stored = source.get("path")
    if stored == "standard input":
        raise UsageError(f"`resume` {checkpoint.path}: the run read its data from standard input; give it again")
    found = stored_data_path(source)
    if found is None:
        raise UsageError(
            f"`resume` {checkpoint.path}: give the training data again (the run read {stored!r}, not found here)"
        )
    return found


def _resumed_tokens(checkpoint: Checkpoint | None, text_as: TextOptions | None) -> TextOptions:
    """How the data becomes tokens: as given (or characters); a resumed text run encodes it with
    its checkpoint's tokenizer, never a new one."""
    from ..data.tokenizers import tokenization, tokenizer_for

    if checkpoint is None or checkpoint.kind != "text":
        return text_as or TextOptions()
    stored = tokenization(checkpoint.data)
    if text_as is not None and text_as.tokens != stored:
        raise UsageError(f"`tokens` {text_as.tokens}: the run being resumed has {stored} tokens, and keeps them")
    return TextOptions(stored, None, None if stored == "char" else tokenizer_for(checkpoint.data))


def _check_kind(dataset: Dataset, target, calendar, text_as, model_opts: dict, train_opts: dict) -> None:
    """Options that apply to the other kind of data."""
    series_only = [f"`{name}`" for name in SERIES_ONLY if name in model_opts or name in train_opts]
    kind_named(dataset.kind).check_training_options(target, calendar, text_as, series_only)


def _as_model_reads(dataset: Dataset, checkpoint: Checkpoint | None, target, calendar, warnings: list[str]) -> Dataset:
    """A series with its target and calendar inputs: a resumed run models the series as it began;
    a new one decides from the data."""
    # A text given to resume a series run is the resume check's to name.
    dataset = with_target(dataset, target or (checkpoint.described.target if checkpoint else "auto"))
    stored = list(checkpoint.model_config.calendar) if checkpoint and checkpoint.kind == "series" else None
    if stored:
        _check_same_step(checkpoint, dataset)
    # Off unless asked for: on benchmarks/forecast.py's monthly and quarterly series it made the
    # forecasts worse (docs/results.md, "Calendar inputs").
    dataset = with_calendar(dataset, calendar or (stored if stored is not None else "none"))
    note = _calendar_note(dataset) if calendar == "auto" else None
    warnings += [note] if note else []
    return dataset


def _configs(
    dataset: Dataset, checkpoint: Checkpoint | None, model_opts: dict, train_opts: dict
) -> tuple[ModelConfig, TrainConfig]:
    """The options given, else the resumed run's, else the measured defaults for this data."""
    if checkpoint:
        base_model, base_train = checkpoint.model_config, from_dict(TrainConfig, checkpoint.meta["train"])
    else:
        bf16 = dataset.kind == "text" and model_opts.get("cell", "lstm") == "lstm" and _fast_bf16(train_opts)
        base_model, base_train = defaults_for(
            dataset.kind, size=data_size(dataset), sine=dataset.source.get("type") == "sine", bf16=bf16
        )
    if any(k in train_opts for k in LIMITS):
        base_train = replace(base_train, **{k: None for k in LIMITS})
    model_config = fitted_to(replace(base_model, **model_opts), dataset)
    train_config = replace(base_train, **train_opts)
    if (
        dataset.kind == "series"
        and dataset.source.get("type") != "sine"
        and "window" not in train_opts
        and not checkpoint
    ):
        window = fitted_window(train_config.window, min(dataset.splits), several=len(dataset.streams) > 1)
        train_config = replace(train_config, window=window)
    if not any((train_config.steps, train_config.epochs, train_config.max_time)):
        train_config = replace(train_config, max_time=300.0)
    return model_config, train_config


def fitted_to(model_config: ModelConfig, data: Dataset) -> ModelConfig:
    """A copy of `model_config` reading what `data` holds: a text's vocabulary, or a series'
    calendar cycles and channels (what the network reads follows the data)."""
    return kind_named(data.kind).fitted(model_config, data)


def _check_overwrite(out: Path, checkpoint: Checkpoint | None, force: bool) -> None:
    """A finished model is work: never replace one by accident (the shipped ones included)."""
    continuing = checkpoint is not None and checkpoint.path and out.resolve() == Path(checkpoint.path).resolve()
    if out.exists() and not (force or continuing):
        hint = f", `resume` {out} to continue its run," if resumable(out) else ""
        raise UsageError(f"{out} already exists; pass `force` to replace it{hint} or `out` to write elsewhere")


def resumable(path: Path) -> bool:
    """Whether a checkpoint still holds its training state (stripped ones, like the shipped ones, do not)."""
    from ..errors import SeqgenError

    try:
        return "optimizer" in load_checkpoint(path).meta
    except SeqgenError:
        return False


def _check_same_step(checkpoint: Checkpoint, dataset: Dataset) -> None:
    """A resumed run of a model that reads the calendar must step as it did: its cycles are in those steps."""
    from ..data.times import Frequency

    theirs, ours = checkpoint.described.source.get("frequency"), dataset.source.get("frequency")
    if ours is None or list(ours) != list(theirs):
        now = f"steps every {Frequency(*ours)}" if ours else "has no times"
        raise UsageError(
            f"`resume` {checkpoint.path}: that run read the calendar of data that steps every "
            f"{Frequency(*theirs)}, and this data {now}; resume it on such data"
        )


def _calendar_note(dataset: Dataset) -> str | None:
    """`calendar` auto: which cycles of the data's step were left out, and why."""
    from ..data.calendar import cycles_for, describe
    from ..data.times import Frequency

    step = dataset.source.get("frequency")
    possible = cycles_for(Frequency(*step)) if step else []
    left = [p for p in possible if p not in (dataset.cycles or [])]
    if not step:
        return "note: `calendar` auto: the data has no time column, so there is no calendar to read"
    if not possible:
        return f"note: `calendar` auto: data that steps every {Frequency(*step)} has no calendar cycle to read"
    if left:
        return (
            f"note: `calendar` auto: the {describe(left)} left out: the training part ({min(dataset.splits)} "
            f"values) does not span {'it' if len(left) == 1 else 'them'}"
        )
    return None


def _fast_bf16(train_opts: dict) -> bool:
    """Whether this run would train a full-size LSTM text model in bfloat16 (see defaults_for)."""
    from ..device import resolve_device
    from .distributed import device_for
    from .precision import resolve_precision

    asked = train_opts.get("precision", "auto")
    if asked not in ("auto", "bf16"):
        return False
    device = resolve_device(device_for(train_opts.get("device", "auto")))
    try:
        return resolve_precision(asked, device, "lstm", 384, is_text=True) == "bf16"
    except UsageError:  # bf16 asked for where an LSTM cannot run it: the trainer says so for the run's cell
        return False


def data_size(dataset: Dataset) -> int:
    """How many characters (text, whatever its tokens) or values the data holds: what the defaults are sized by."""
    return kind_named(dataset.kind).size(dataset)


def sized_note(dataset: Dataset, model_config: ModelConfig, train_config: TrainConfig) -> str | None:
    """What a small text's or a short series' defaults are, when they are not the full-size ones
    (options given included)."""
    size = data_size(dataset)
    m, t = model_config, train_config
    small, _ = defaults_for("series", size=size)
    if (
        dataset.kind == "series"
        and dataset.source.get("type") != "sine"
        and size < SMALL_SERIES
        and (m.layers, m.hidden) == (small.layers, small.hidden)
    ):  # not when options chose the size
        return (
            f"note: a short series ({size:,} values): a model sized to it, {m.cell.upper()} {m.layers} x {m.hidden} "
            f"(larger ones learn its first values by heart); options given still win"
        )
    if dataset.kind != "text" or defaults_for(dataset.kind, size=size) == defaults_for(dataset.kind):
        return None
    limits = [
        f"{t.steps:,} steps" if t.steps else "",
        f"{t.epochs:g} epochs" if t.epochs else "",
        f"{t.max_time:g}s" if t.max_time else "",
    ]
    limit = ("until " + " or ".join(part for part in limits if part)) if any(limits) else "with no limit"
    return (
        f"note: a small text ({size:,} characters): defaults sized to it, {m.cell.upper()} {m.layers} x {m.hidden}, "
        f"batch {t.batch_size} x {t.window}, validation every {t.eval_every} steps, {limit}, or earlier once the "
        f"validation loss keeps rising ({t.patience} evaluations); options given still win"
    )
