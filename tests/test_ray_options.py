"""Per-task Ray settings (`ray_options`): every key checked before anything is submitted, from run_audit, the
command line and the ini alike; what the tasks ask of Ray; and the key a Ray audit's variants get."""

from __future__ import annotations

import sys

import pytest

from pytest_kernelbias import AuditConfigError, AuditSpec
from pytest_kernelbias._options import from_sources
from pytest_kernelbias.execution._ray_options import RayOptions, ray_options, task_device

from .conftest import tiny_cnn


def test_a_mapping_a_json_object_and_a_toml_inline_table_give_the_same_options():
    want = RayOptions(num_gpus=0.25, resources={"a100": 1}, max_retries=3)
    assert ray_options({"num_gpus": 0.25, "resources": {"a100": 1}, "max_retries": 3}) == want
    assert ray_options('{"num_gpus": 0.25, "resources": {"a100": 1}, "max_retries": 3}') == want
    if sys.version_info >= (3, 11):
        assert ray_options('{num_gpus = 0.25, resources = {a100 = 1}, max_retries = 3}') == want
    assert ray_options(None) == RayOptions() and ray_options(want) is want


@pytest.mark.parametrize("value, message", [
    ({"num_gpu": 1}, r"unknown key 'num_gpu' \(did you mean 'num_gpus'\?\)"),
    ({"num_gpus": -1}, r"num_gpus must be a number >= 0"),
    ({"num_cpus": float("nan")}, r"num_cpus must be a number"),
    ({"max_retries": 1.5}, r"max_retries must be a whole number >= -1"),
    ({"resources": {"GPU": 1}}, r"'GPU' is not a custom resource name \(CPU and GPU are num_cpus and num_gpus\)"),
    ({"resources": ["a100"]}, r"resources must map a custom resource name"),
    ({"retry_exceptions": ["NoSuchError"]}, r"'NoSuchError' is not a builtin exception"),
    ({"runtime_env": {"working_dirr": "."}}, r"unknown key 'working_dirr' \(did you mean 'working_dir'\?\)"),
    ({"runtime_env": {"working_dir": "/no/such/folder"}}, r"working_dir '/no/such/folder' is not a folder here"),
    ({"runtime_env": {"py_modules": ["/no/such/module.py"]}}, r"py_modules entry '/no/such/module.py' does not exist"),
    ({"runtime_env": {"py_modules": "abc"}}, r"py_modules must be a list .*write \['abc'\] for one"),
    ({"scheduling_strategy": "spread"}, r"scheduling_strategy must be 'DEFAULT', 'SPREAD' or"),
    ({"scheduling_strategy": {"node_id": "ab", "soft": "no"}}, r"soft must be true or false"),
    ({"namespace": ""}, r"namespace must be a non-empty name"),
    ({"wait_timeout": 0.5}, r"wait_timeout must be a number >= 1"),
    ({"allow_mixed_environments": "yes"}, r"allow_mixed_environments must be true or false"),
    ("num_gpus: 1", r"neither a JSON object nor a TOML inline table"),
    (["num_gpus", 1], r"ray_options must be a mapping"),
])
def test_every_bad_setting_is_refused_naming_the_fix(value, message):
    with pytest.raises(AuditConfigError, match=message):
        ray_options(value)


def test_retry_exceptions_take_builtin_and_package_error_names():
    from pytest_kernelbias.errors import NonFiniteLossError

    options = ray_options({"retry_exceptions": ["MemoryError", "NonFiniteLossError"]})
    assert options.retry_exceptions == (MemoryError, NonFiniteLossError)
    assert options.as_dict()["retry_exceptions"] == ["MemoryError", "NonFiniteLossError"]


def test_gpus_follow_the_device_unless_set_and_auto_is_cuda_when_the_tasks_ask_for_gpus():
    assert RayOptions().gpus("cuda") == 1.0 and RayOptions().gpus("cpu") == 0.0
    assert RayOptions(num_gpus=0.25).gpus("cuda") == 0.25
    assert task_device({"num_gpus": 0.5}, "auto") == "cuda" and task_device(None, "auto") == "auto"
    assert task_device({"num_gpus": 0.5}, "cpu") == "cpu"
    # The driver needs no GPU: the spec says cuda because the tasks ask for GPUs, whatever this machine has.
    spec = AuditSpec.from_kwargs(tiny_cnn, "0", [3, 5], executor="ray", ray_options={"num_gpus": 0.5}, seeds=2)
    assert spec.recipe.device == "cuda" and spec.execution.ray_options.num_gpus == 0.5


def test_the_command_line_and_the_ini_take_the_options_and_refuse_bad_ones_at_startup():
    settings = from_sources({"ray_options": '{"num_gpus": 0.5}'}, {})
    assert settings.ray_options == '{"num_gpus": 0.5}' and "ray_options=" in settings.header()
    assert from_sources({}, {"ray_options": '{"max_retries": 2}'}).ray_options == '{"max_retries": 2}'
    with pytest.raises(AuditConfigError, match="unknown key 'gpus'"):
        from_sources({"ray_options": '{"gpus": 1}'}, {})


def test_a_ray_audits_key_holds_the_determinism_switches_not_this_machines_cpu():
    from pytest_kernelbias.audit import prepare_plan as prepare

    local, _, _ = prepare(AuditSpec.from_kwargs(tiny_cnn, "0", [3, 5], seeds=2, workers=1))
    on_ray, _, _ = prepare(AuditSpec.from_kwargs(tiny_cnn, "0", [3, 5], seeds=2, executor="ray"))
    numeric = on_ray.variants[0].weights_spec["numeric"]
    assert "cpu_capability" not in numeric and numeric["deterministic"] is False and "measured" in numeric
    assert "cpu_capability" in local.variants[0].weights_spec["numeric"]
    assert {v.key for v in local.variants}.isdisjoint(v.key for v in on_ray.variants)
