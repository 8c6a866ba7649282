"""Every DAG's default config is of the use case its stages take (else every run would fail)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.dags.test_dag_integrity import DAG_FILES, _dags_of, _import

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.stem)
def test_default_config_is_of_the_use_case_the_stages_take(path: Path) -> None:
    from operators.stage import EeflowStageOperator, expected_config, import_target
    from tasks.config.common import expect_use_case, load_config

    for dag in _dags_of(_import(path)):
        for task in dag.tasks:
            if isinstance(task, EeflowStageOperator):
                target, default = task.target, task.default_config
            elif task.operator_class is EeflowStageOperator:
                target, default = (task.partial_kwargs["target"],
                                   task.partial_kwargs["default_config"])
            else:
                continue
            expect = expected_config(import_target(target))
            if expect is None:
                continue
            use_cases = (dag.params.get_param("use_case").schema["enum"] if "{{ params.use_case }}"
                         in default else [None])
            for use_case in use_cases:
                file = REPO / default.replace("{{ params.use_case }}", str(use_case))
                expect_use_case(load_config(file), expect, f"{dag.dag_id}.{task.task_id}")
