"""The typed result of a stage function: output URIs and a small JSON summary.

Every ``tasks/<use_case>/stages.py`` function has the signature
``stage(cfg: <UseCase>Config, run_date: date, **kwargs) -> StageResult`` (or, for the planning
stages that fan out a mapped task, ``-> StagePlan``). ``operators.stage.EeflowStageOperator``
pushes :meth:`StageResult.as_dict` to XCom and the CLI prints the same dict, so a DAG run and a
command-line run report the same keys.

This module is low-level: it imports no use-case package.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, TypeAlias

#: A JSON value (what XCom and the CLI carry); read-only containers, so ``dict[str, int]`` is one.
JsonValue: TypeAlias = (
    str | int | float | bool | None | Sequence["JsonValue"] | Mapping[str, "JsonValue"]
)
#: One output of a stage: a URI (local path, ``s3://...``) or a list of them.
OutputUri: TypeAlias = str | list[str]


def _json(value: Any) -> Any:
    """Return ``value`` as plain JSON data (paths and dates become strings, tuples lists)."""
    return json.loads(json.dumps(value, default=as_json))


def _uri(value: Any) -> OutputUri:
    if isinstance(value, Mapping):
        raise TypeError(f"a stage output is a URI or a list of URIs, not a mapping: {value!r}")
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        return str(value)
    return [str(v) for v in value]


@dataclass(frozen=True, eq=False)
class StageResult(Mapping[str, Any]):
    """What a stage returns: its outputs (URIs) and a small JSON summary (counts, keys, names).

    The result is read-only; as a mapping it reads like the flat dict :meth:`as_dict` gives
    (summary keys + output keys), which is what XCom holds and the CLI prints.

    Args:
        outputs: output name -> URI (or list of URIs) the stage wrote.
        summary: small JSON-able facts about the run (counts, run key, model name...).

    Raises:
        ValueError: a key is both an output and a summary key.

    """

    outputs: Mapping[str, OutputUri] = field(default_factory=dict)
    summary: Mapping[str, JsonValue] = field(default_factory=dict)

    def __post_init__(self) -> None:
        outputs = {str(k): _uri(v) for k, v in self.outputs.items()}
        summary = _json(dict(self.summary))
        clash = sorted(set(outputs) & set(summary))
        if clash:
            raise ValueError(f"stage result keys {clash} are both outputs and summary keys")
        object.__setattr__(self, "outputs", MappingProxyType(outputs))
        object.__setattr__(self, "summary", MappingProxyType(summary))

    @classmethod
    def from_dict(cls, payload: Mapping[str, Any], outputs: Iterable[str] = ()) -> StageResult:
        """Split a flat result dict: the keys named in ``outputs`` (when present) are outputs."""
        names = set(outputs)
        return cls(
            outputs={k: v for k, v in payload.items() if k in names and v is not None},
            summary={k: v for k, v in payload.items() if k not in names or v is None},
        )

    def as_dict(self) -> dict[str, JsonValue]:
        """Return the flat JSON dict pushed to XCom and printed by the CLI."""
        outputs = {k: list(v) if isinstance(v, list) else v for k, v in self.outputs.items()}
        return {**_json(dict(self.summary)), **outputs}

    def __getitem__(self, key: str) -> Any:
        if key in self.outputs:  # the same copy as_dict() holds, without building the whole dict
            value = self.outputs[key]
            return list(value) if isinstance(value, list) else value
        return _json(self.summary[key])

    def __iter__(self) -> Iterator[str]:
        return iter([*self.summary, *self.outputs])  # as_dict()'s key order

    def __len__(self) -> int:
        return len(self.outputs) + len(self.summary)


@dataclass(frozen=True)
class StagePlan:
    """What a planning stage returns: the stage kwargs of each task of a mapped stage.

    ``EeflowStageOperator.partial(...).expand(stage_kwargs=<planning task>.output)`` runs one
    task per item, each called with that item's kwargs.
    """

    items: tuple[Mapping[str, JsonValue], ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "items", tuple(MappingProxyType(_json(dict(i)))
                                                for i in self.items))

    def as_list(self) -> list[dict[str, JsonValue]]:
        """Return the JSON list pushed to XCom (one kwargs dict per mapped task)."""
        return [_json(dict(item)) for item in self.items]


def as_json(result: Any) -> Any:
    """``json.dumps`` default: stage results / plans as their JSON form, anything else as str."""
    if isinstance(result, StageResult):
        return result.as_dict()
    if isinstance(result, StagePlan):
        return result.as_list()
    return str(result)
