"""eeflow's error families, their exit codes, and the one error boundary of the CLI and operators.

Every eeflow exception derives from :class:`EeflowError` (beside its builtin base, e.g.
``class SafeError(EeflowError, ValueError)``) and names its :class:`ErrorFamily`. Builtin and
third-party exceptions are sorted into the same families by :func:`family_of`, so the CLI
(``tasks.cli.main``) and the Airflow operator (``operators/stage.py``) report every failure
the same way (:func:`describe_failure`): one message naming the stage, the input and the cause,
an exit code per family, and the traceback only when ``EEFLOW_DEBUG=1`` is set.

:class:`EeflowError` pickles with its message, attributes and a picklable stand-in for a cause
that cannot cross a process boundary (a chained rasterio / GDAL error), so an error raised in a
Dask worker reaches the client with its type and message.
"""

from __future__ import annotations

import enum
import os
import pickle
from dataclasses import dataclass
from typing import Any, ClassVar

#: Environment variable that makes the CLI and operators show the full traceback.
DEBUG_ENV = "EEFLOW_DEBUG"


class ErrorFamily(enum.Enum):
    """What kind of failure an error is; each has its own exit code and advice."""

    INPUT = (1, "bad input data", "fix or regenerate the input named above")
    CONFIG = (2, "config error",
              "fix the config file or key named above; check it with `eeflow config validate`")
    UNAVAILABLE = (3, "store or service unavailable",
                   "start the service named above or check its address, then re-run")
    IO = (4, "I/O error", "free disk space, fix permissions or stop the process holding the "
          "file named above, then re-run")
    INTERNAL = (70, "internal error (a bug in eeflow)",
                f"re-run with {DEBUG_ENV}=1 and report the traceback")

    def __init__(self, exit_code: int, label: str, advice: str) -> None:
        self.exit_code = exit_code
        self.label = label
        self.advice = advice


#: Exit code of a run stopped by Ctrl-C (128 + SIGINT).
EXIT_INTERRUPTED = 130


class EeflowError(Exception):
    """Base of eeflow's exceptions: a family for the error boundary, and safe to pickle.

    Subclasses keep their builtin base for callers that catch it, e.g.
    ``class SafeError(EeflowError, ValueError)``; ``family`` says how the boundary reports them.
    """

    family: ClassVar[ErrorFamily] = ErrorFamily.INPUT

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle the message, attributes and a cause that survives unpickling.

        A chained cause or context that cannot be pickled and loaded again (rasterio's
        ``CPLE_*`` errors cannot) is replaced by a :class:`ForeignError` carrying its type and
        message, here and in the exception itself (tblib, which Dask uses, pickles the chain
        from the exception's attributes after calling this method).
        """
        _make_chain_picklable(self)
        state = dict(self.__dict__)
        return (_rebuild, (type(self), self.args, state, self.__cause__, self.__context__,
                           self.__suppress_context__))


class ForeignError(EeflowError):
    """Stand-in for an exception that could not cross a process boundary (type + message)."""

    family: ClassVar[ErrorFamily] = ErrorFamily.INPUT


class InternalError(EeflowError, RuntimeError):
    """An invariant of eeflow's own code does not hold (a bug, not a problem of the input)."""

    family: ClassVar[ErrorFamily] = ErrorFamily.INTERNAL


def _rebuild(
    cls: type[BaseException],
    args: tuple[Any, ...],
    state: dict[str, Any],
    cause: BaseException | None,
    context: BaseException | None,
    suppress_context: bool,
) -> BaseException:
    err = cls.__new__(cls, *args)
    err.args = args
    err.__dict__.update(state)
    err.__cause__ = cause
    err.__context__ = context
    err.__suppress_context__ = suppress_context
    return err


def _round_trips(err: BaseException) -> bool:
    try:
        pickle.loads(pickle.dumps(err))
    except Exception:  # any failure: pickling errors, unpickling with the wrong arguments
        return False
    return True


def describe_exception(err: BaseException) -> str:
    """``module.Type: message`` of ``err`` and of its causes (``<-`` between them)."""
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        kind = type(current)
        module = "" if kind.__module__ == "builtins" else f"{kind.__module__}."
        parts.append(f"{module}{kind.__qualname__}: {current}")
        current = current.__cause__ or (
            None if current.__suppress_context__ else current.__context__
        )
    return " <- ".join(parts)


def _make_chain_picklable(err: BaseException) -> None:
    """Replace ``err``'s cause / context by a :class:`ForeignError` if they do not round-trip."""
    for attr in ("__cause__", "__context__"):
        link = getattr(err, attr)
        if link is None or isinstance(link, ForeignError):
            continue
        if isinstance(link, EeflowError):
            _make_chain_picklable(link)
            continue
        if not _round_trips(link):
            stand_in = ForeignError(describe_exception(link))
            if attr == "__cause__" and err.__context__ is link:
                err.__context__ = stand_in
            setattr(err, attr, stand_in)


def family_of(err: BaseException) -> ErrorFamily:
    """Sort any exception into an :class:`ErrorFamily` (eeflow's own name theirs)."""
    if isinstance(err, EeflowError):
        return err.family
    if isinstance(err, (FileNotFoundError, NotADirectoryError, IsADirectoryError)):
        return ErrorFamily.INPUT  # a missing input or upstream output; the message names it
    if isinstance(err, (ConnectionError, TimeoutError)):
        return ErrorFamily.UNAVAILABLE
    if isinstance(err, (OSError, MemoryError)):
        return ErrorFamily.IO  # permissions, a full or read-only disk, a lock, out of memory
    if isinstance(err, SyntaxError):
        # a SPARQL / WKT parser's message is about the user's text; a Python file's is a bug
        filename = str(err.filename or "")
        return ErrorFamily.INTERNAL if filename.endswith(".py") else ErrorFamily.INPUT
    if isinstance(err, (ValueError, RuntimeError, LookupError)) and not isinstance(
        err, (KeyError, IndexError, NotImplementedError, RecursionError)
    ):
        return ErrorFamily.INPUT  # eeflow raises these with messages written for users
    return ErrorFamily.INTERNAL


@dataclass(frozen=True)
class Failure:
    """How a failed stage is reported: family, exit code and the message for the user."""

    family: ErrorFamily
    exit_code: int
    message: str


def describe_failure(err: BaseException, stage: str, inputs: str) -> Failure:
    """Build the one-paragraph report of ``err`` raised while running ``stage`` on ``inputs``.

    Args:
        err: the exception that ended the stage.
        stage: what ran, e.g. ``eeflow polar harmonise`` or ``polar_training.patches``.
        inputs: what it ran on, e.g. ``--config configs/polar.yaml --run-date 2026-01-15``.

    """
    if isinstance(err, KeyboardInterrupt):
        return Failure(ErrorFamily.INTERNAL, EXIT_INTERRUPTED, f"{stage}: interrupted")
    family = family_of(err)
    cause = _one_line_cause(err)
    where = f"{stage} ({inputs})" if inputs else stage
    message = (
        f"{where} failed: {family.label}: {cause}\n"
        f"what to do: {family.advice}"
        + ("" if family is ErrorFamily.INTERNAL or debug_enabled()
           else f"; for the traceback re-run with {DEBUG_ENV}=1")
    )
    return Failure(family, family.exit_code, message)


def _one_line_cause(err: BaseException) -> str:
    kind = type(err).__name__
    text = str(err).strip()
    if isinstance(err, OSError) and err.filename and str(err.filename) not in text:
        text = f"{text}: {err.filename}"
    if isinstance(err, KeyError) and text:
        text = f"missing key {text}"
    return f"{kind}: {text}" if text else kind


def debug_enabled() -> bool:
    """Return True when ``EEFLOW_DEBUG`` is set to a true value (1, true, yes, on)."""
    return os.environ.get(DEBUG_ENV, "").strip().lower() in {"1", "true", "yes", "on"}
