"""``EeflowStageOperator``: call one ``tasks`` stage function for the run's config and date."""

from __future__ import annotations

import importlib
import inspect
import json
import types
import typing
from collections.abc import Mapping
from typing import Any

from airflow.sdk import BaseOperator

from operators.context import config_path, load_run_config, run_date_from_context
from tasks.config.common import UseCaseConfig

#: XCom values above this size are refused: stages must return paths and small summaries.
MAX_XCOM_BYTES = 64_000


def import_target(target: str) -> Any:
    """Import ``"package.module:function"``."""
    module_name, _, attr = target.partition(":")
    if not attr:
        raise ValueError(f"stage target {target!r} must look like 'tasks.module:function'")
    return getattr(importlib.import_module(module_name), attr)


def expected_config(
    function: Any,
) -> type[UseCaseConfig] | tuple[type[UseCaseConfig], ...] | None:
    """Return the config model(s) a stage's first parameter is annotated with.

    ``cfg: PolarConfig`` gives ``PolarConfig``, ``cfg: PolarConfig | FoodSecurityConfig`` both;
    None (any use case) when the parameter is not annotated with use-case config models only
    (``UseCaseConfig`` itself, ``Any``, no annotation).
    """
    try:
        first = next(iter(inspect.signature(function).parameters.values()))
        hint = typing.get_type_hints(function).get(first.name)
    except (StopIteration, TypeError, ValueError, NameError):
        return None
    union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    models = typing.get_args(hint) if union else (hint,)
    if not models or not all(isinstance(m, type) and issubclass(m, UseCaseConfig)
                             and m is not UseCaseConfig for m in models):
        return None
    return models[0] if len(models) == 1 else tuple(models)


def xcom_payload(result: Any, target: str) -> Any:
    """Return the XCom form of a stage's typed result; refuse anything else.

    Raises:
        TypeError: the stage returned something other than a ``StageResult`` / ``StagePlan``.

    """
    from tasks.stage_result import StagePlan, StageResult

    if isinstance(result, StageResult):
        return result.as_dict()
    if isinstance(result, StagePlan):
        return result.as_list()
    raise TypeError(f"{target} returned a {type(result).__name__}; stage functions return a "
                    "tasks.stage_result.StageResult (or a StagePlan for a mapped stage)")


def check_small(result: Any, target: str) -> Any:
    """Refuse results that are not small JSON (URIs and counts only go through XCom)."""
    payload = json.dumps(result, default=str)
    if len(payload) > MAX_XCOM_BYTES:
        raise ValueError(
            f"{target} returned {len(payload)} bytes; stages must return paths and small "
            f"summaries (< {MAX_XCOM_BYTES} bytes), not data"
        )
    return json.loads(payload)


class EeflowStageOperator(BaseOperator):
    """Run ``target(config, run_date, **stage_kwargs)`` and push its small result to XCom.

    The target returns a :class:`tasks.stage_result.StageResult` (its ``as_dict()`` goes to
    XCom) or, for a planning stage, a :class:`tasks.stage_result.StagePlan` (its list of kwargs
    fans out a mapped stage: ``EeflowStageOperator.partial(...).expand(stage_kwargs=
    plan.output)``). Anything else fails the task.

    Args:
        target: ``"tasks.polar.stages:harmonise_stage"``-style dotted path; imported in
            ``execute`` so parsing the DAG never imports heavy libraries.
        default_config: config file used when the run has no ``config`` param (templated,
            e.g. ``"configs/{{ params.use_case }}.yaml"``).
        param_to_key: DAG params that override config keys, e.g. ``{"epochs": "train.epochs"}``.
        param_to_kwarg: DAG params passed to the stage as keyword arguments, e.g.
            ``{"model": "model"}`` (the param's value as the run has it, None when unset).
        stage_kwargs: extra keyword arguments (templated; the expanded field of mapped stages).
            They win over ``param_to_kwarg``.

    """

    template_fields = ("stage_kwargs", "default_config")
    ui_color = "#d8ecf7"

    def __init__(
        self,
        *,
        target: str,
        default_config: str,
        param_to_key: Mapping[str, str] | None = None,
        param_to_kwarg: Mapping[str, str] | None = None,
        stage_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.target = target
        self.default_config = default_config
        self.param_to_key = dict(param_to_key or {})
        self.param_to_kwarg = dict(param_to_kwarg or {})
        self.stage_kwargs = dict(stage_kwargs or {})

    def execute(self, context: Any) -> Any:
        """Load the config, resolve the run date, call the stage, return its summary.

        A ``config`` of another use case than the one the stage's ``cfg`` is annotated with
        (:func:`expected_config`) is refused with a ConfigError before the stage runs.

        This is the operators' error boundary (the same as the CLI's, :mod:`tasks.errors`): a
        failure is logged as one message naming the task, the target, the config and run date,
        and the cause. Config errors, bad input data and internal errors fail the task at once
        (a retry cannot fix them); an unavailable store or service and I/O faults raise a
        retryable error. The traceback is kept only with ``EEFLOW_DEBUG=1``.
        """
        from tasks.errors import ErrorFamily, debug_enabled, describe_failure

        try:
            stage = import_target(self.target)
            cfg = load_run_config(context, self.default_config, self.param_to_key,
                                  expect=expected_config(stage))
            run_date = run_date_from_context(context)
            self.log.info("running %s for %s", self.target, run_date)
            params = context.get("params") or {}
            kwargs = {kwarg: params.get(name) for name, kwarg in self.param_to_kwarg.items()}
            kwargs.update(self.stage_kwargs)
            result = stage(cfg, run_date, **kwargs)
            return check_small(xcom_payload(result, self.target), self.target)
        except Exception as err:
            params = context.get("params") or {}
            inputs = f"config {config_path(params, self.default_config)}"
            logical = params.get("run_date") or context.get("ds")
            if logical:
                inputs += f", run date {logical}"
            failure = describe_failure(err, f"{self.task_id} ({self.target})", inputs)
            self.log.error("%s (exit code %d)", failure.message, failure.exit_code)
            retryable = failure.family in (ErrorFamily.UNAVAILABLE, ErrorFamily.IO)
            stage_error = stage_failure(failure.message, retryable=retryable)
            if debug_enabled():
                raise stage_error from err
            raise stage_error from None


def stage_failure(message: str, *, retryable: bool) -> Exception:
    """Airflow exception for a failed stage: retried when ``retryable``, else failed at once."""
    from airflow.sdk.exceptions import AirflowException, AirflowFailException

    return AirflowException(message) if retryable else AirflowFailException(message)
