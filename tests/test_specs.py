"""Service specs through the real loader: the original format, env expansion, versioning, validation messages."""

import os
import re
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import ServiceConfiguration, ServicePlan, ServiceStep
from app.ops.specs import (
    SpecError,
    apply_specs,
    expand_env,
    load_spec_files,
    parse_specs,
    resolve_script,
    spec_fallbacks,
)

ORIGINAL_FORMAT = Path(__file__).resolve().parent / "specs" / "original-format.yaml"  # the original format
SHA = "0123456789abcdef" * 4
SOURCE = "specs.yaml"


@pytest.fixture
def scripts_dir(app, tmp_path):
    """A scripts directory holding install.sh, check.py, omegaml/check.sh, an extensionless tool,
    a symlink to a script outside it; ``outside.sh`` sits next to it."""
    scripts = tmp_path / "scripts"
    (scripts / "omegaml").mkdir(parents=True)
    (scripts / "sub").mkdir()
    (scripts / "install.sh").write_text("#!/bin/sh\necho install\n")
    (scripts / "check.py").write_text("print('check')\n")
    (scripts / "omegaml" / "check.sh").write_text("#!/bin/sh\necho ok\n")
    (scripts / "tool").write_text("#!/bin/sh\necho tool\n")
    (tmp_path / "outside.sh").write_text("#!/bin/sh\necho outside\n")
    (scripts / "escape.sh").symlink_to(tmp_path / "outside.sh")
    (scripts / "alias.sh").symlink_to(scripts / "install.sh")
    app.config["SCRIPTS_DIR"] = scripts
    return scripts


def parse(text, scripts_dir, environ=None, fallbacks=None):
    """Parse ``text`` with a fixed environment, so the tests do not depend on the caller's."""
    return parse_specs(
        text,
        SOURCE,
        scripts_dir,
        {"CLUSTER_ID": "local"} if fallbacks is None else fallbacks,
        {} if environ is None else environ,
    )


def apply(text, scripts_dir, environ=None):
    results = apply_specs(parse(text, scripts_dir, environ))
    db.session.commit()
    return results


def count(model):
    return db.session.scalar(select(func.count()).select_from(model))


def configurations(name):
    plan = ServicePlan.by_name(name)
    return db.session.scalars(
        select(ServiceConfiguration)
        .where(ServiceConfiguration.plan_id == plan.id)
        .order_by(ServiceConfiguration.version)
    ).all()


def write(path, text):
    path.write_text(text)
    return path


# -- the original format ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cluster_env",
    [pytest.param("prod-eu-1", id="from-environment"), pytest.param(None, id="unset"), pytest.param("", id="empty")],
)
def test_original_format_file_loads_unchanged(app, monkeypatch, cluster_env):
    if cluster_env is None:
        monkeypatch.delenv("CLUSTER_ID", raising=False)
    else:
        monkeypatch.setenv("CLUSTER_ID", cluster_env)
    expected_cluster = cluster_env or app.config["CLUSTER_ID"]

    plans = load_spec_files([ORIGINAL_FORMAT], app.config["SCRIPTS_DIR"], spec_fallbacks(app.config))
    results = apply_specs(plans)
    db.session.commit()

    assert [(r.plan, r.action, r.version) for r in results] == [("signup", "created", 1), ("omegaml", "created", 1)]
    for name, target in [("signup", "app.ops.tasks.user_signup"), ("omegaml", "app.ops.tasks.deploy_user_service")]:
        plan = ServicePlan.by_name(name)
        assert (plan.title, plan.offered, plan.one_per_user, plan.active) == (name, False, True, True)
        configuration = plan.current_configuration
        assert configuration.version == 1
        assert configuration.env == {"CLUSTER_ID": expected_cluster}
        [step] = configuration.steps
        assert step.position == 1
        assert step.kind == "task"
        assert step.target == target
        assert step.name == target.rsplit(".", 1)[-1]
        assert step.phases == ["install"]
        assert step.params == ""
        assert (step.timeout, step.retries, step.language, step.repository, step.ref, step.sha256) == (
            None,
            0,
            None,
            None,
            None,
            None,
        )


def test_cluster_id_falls_back_to_the_app_config(app, monkeypatch):
    monkeypatch.delenv("CLUSTER_ID", raising=False)
    app.config["CLUSTER_ID"] = "cluster-from-config"
    [signup, omegaml] = load_spec_files([ORIGINAL_FORMAT], app.config["SCRIPTS_DIR"], spec_fallbacks(app.config))
    assert signup.env == omegaml.env == {"CLUSTER_ID": "cluster-from-config"}


def test_the_test_config_cluster_id_defaults_to_local(app):
    if os.environ.get("OMEGAOPS_CLUSTER_ID"):
        pytest.skip("OMEGAOPS_CLUSTER_ID is set in this environment")
    assert spec_fallbacks(app.config) == {"CLUSTER_ID": "local"}


def test_loading_the_original_format_twice_makes_no_new_version(app, monkeypatch):
    monkeypatch.setenv("CLUSTER_ID", "prod-eu-1")
    scripts = app.config["SCRIPTS_DIR"]
    apply_specs(load_spec_files([ORIGINAL_FORMAT], scripts, spec_fallbacks(app.config)))
    db.session.commit()
    before = (count(ServicePlan), count(ServiceConfiguration), count(ServiceStep))

    results = apply_specs(load_spec_files([ORIGINAL_FORMAT], scripts, spec_fallbacks(app.config)))
    db.session.commit()

    assert [str(r) for r in results] == [
        "signup: unchanged (configuration v1)",
        "omegaml: unchanged (configuration v1)",
    ]
    assert (count(ServicePlan), count(ServiceConfiguration), count(ServiceStep)) == before == (2, 2, 2)


# -- env expansion ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "environ", "fallbacks", "expected"),
    [
        ("${REGION:-eu}", {}, {}, "eu"),
        ("${REGION:-}", {}, {}, ""),
        ("${REGION:-eu}", {"REGION": "us"}, {}, "us"),
        ("${REGION:-eu}", {"REGION": ""}, {}, "eu"),
        ("${REGION}", {"REGION": "us"}, {"REGION": "eu"}, "us"),
        ("${REGION}", {}, {"REGION": "eu"}, "eu"),
        ("${REGION}", {"REGION": ""}, {"REGION": "eu"}, "eu"),
        ("${PORT}", {}, {"PORT": 8080}, "8080"),
        ("https://${HOST}:${PORT:-443}/x", {"HOST": "h.example"}, {}, "https://h.example:443/x"),
        ("no variables", {}, {}, "no variables"),
        ("$REGION and {REGION}", {}, {}, "$REGION and {REGION}"),
    ],
)
def test_expand_env_takes_the_environment_then_the_default_then_the_fallback(value, environ, fallbacks, expected):
    assert expand_env(value, fallbacks, environ) == expected


def test_expand_env_reads_the_process_environment_by_default(monkeypatch):
    monkeypatch.setenv("OMEGAOPS_TEST_REGION", "ap")
    assert expand_env("${OMEGAOPS_TEST_REGION}", {}) == "ap"


@pytest.mark.parametrize("fallbacks", [{}, {"REGION": ""}, {"OTHER": "x"}])
def test_expand_env_raises_key_error_naming_an_unset_variable(fallbacks):
    with pytest.raises(KeyError) as excinfo:
        expand_env("a-${REGION}", fallbacks, {})
    assert excinfo.value.args == ("REGION",)


def test_env_default_is_used_when_the_variable_is_unset(app, tmp_path):
    [plan] = parse("- plan: web\n  configuration:\n    env:\n      REGION: ${REGION:-eu-west}\n", tmp_path)
    assert plan.env == {"REGION": "eu-west"}


def test_env_values_of_other_yaml_types_become_strings(app, tmp_path):
    text = "- plan: web\n  configuration:\n    env:\n      PORT: 8080\n      DEBUG: true\n      EMPTY:\n"
    [plan] = parse(text, tmp_path)
    assert plan.env == {"PORT": "8080", "DEBUG": "true", "EMPTY": ""}


def test_unset_env_variable_without_default_or_fallback_names_file_plan_and_key(app, tmp_path):
    spec = write(tmp_path / "web.yaml", "- plan: web\n  configuration:\n    env:\n      REGION: ${REGION}\n")
    with pytest.raises(SpecError) as excinfo:
        load_spec_files([spec], tmp_path, {}, environ={})
    message = str(excinfo.value)
    assert message.startswith(f"{spec}: plan 'web': configuration.env.REGION: ")
    assert "environment variable REGION is not set" in message
    assert "${REGION:-default}" in message


# -- versioning ------------------------------------------------------------------------------------

VERSIONED_SPEC = """
- plan: web
  title: {title}
  offered: {offered}
  configuration:
    env:
      REGION: {region}
  steps:
    - task: app.ops.tasks.deploy_user_service
      params: "{params}"
      timeout: {timeout}
      phases: [{phases}]
"""
BASE = {
    "title": "Web",
    "offered": "false",
    "region": "eu",
    "params": "size=1",
    "timeout": 60,
    "phases": "install, update",
}


def versioned(**changes):
    return VERSIONED_SPEC.format(**{**BASE, **changes})


def test_applying_the_same_spec_twice_makes_no_new_version(app, tmp_path):
    assert [str(r) for r in apply(versioned(), tmp_path)] == ["web: created (configuration v1)"]
    before = (count(ServiceConfiguration), count(ServiceStep))

    results = apply(versioned(), tmp_path)

    assert [(r.plan, r.action, r.version) for r in results] == [("web", "unchanged", 1)]
    assert (count(ServiceConfiguration), count(ServiceStep)) == before == (1, 1)


@pytest.mark.parametrize(
    "change",
    [
        {"timeout": 120},
        {"params": "size=2"},
        {"params": ""},
        {"phases": "install"},
        {"region": "us"},
    ],
    ids=["timeout", "params", "params-removed", "phases", "env"],
)
def test_changing_a_step_or_the_env_makes_a_new_version_and_keeps_the_old(app, tmp_path, change):
    apply(versioned(), tmp_path)

    results = apply(versioned(**change), tmp_path)

    assert [(r.plan, r.action, r.version) for r in results] == [("web", "updated", 2)]
    first, second = configurations("web")
    assert (first.version, second.version) == (1, 2)
    assert ServicePlan.by_name("web").current_configuration.id == second.id
    assert first.env == {"REGION": "eu"}
    assert (first.steps[0].timeout, first.steps[0].params, first.steps[0].phases) == (
        60,
        "size=1",
        ["install", "update"],
    )
    expected = {**BASE, **change}
    assert second.env == {"REGION": expected["region"]}
    assert second.steps[0].timeout == expected["timeout"]
    assert second.steps[0].params == expected["params"]
    assert count(ServiceStep) == 2


def test_adding_a_step_makes_a_new_version(app, tmp_path):
    apply(versioned(), tmp_path)
    text = versioned() + "    - task: app.ops.tasks.user_signup\n"

    [result] = apply(text, tmp_path)

    assert (result.action, result.version) == ("updated", 2)
    first, second = configurations("web")
    assert [s.target for s in first.steps] == ["app.ops.tasks.deploy_user_service"]
    assert [(s.position, s.target) for s in second.steps] == [
        (1, "app.ops.tasks.deploy_user_service"),
        (2, "app.ops.tasks.user_signup"),
    ]


@pytest.mark.parametrize(
    ("change", "field", "value"),
    [({"title": "Web v2"}, "title", "Web v2"), ({"offered": "true"}, "offered", True)],
    ids=["title", "offered"],
)
def test_changing_plan_fields_updates_the_plan_without_a_new_version(app, tmp_path, change, field, value):
    apply(versioned(), tmp_path)

    results = apply(versioned(**change), tmp_path)

    assert [(r.plan, r.action, r.version) for r in results] == [("web", "updated", 1)]
    assert getattr(ServicePlan.by_name("web"), field) == value
    assert count(ServiceConfiguration) == 1


def test_plan_fields_the_spec_leaves_out_keep_their_values(app, tmp_path):
    apply(versioned(), tmp_path)
    text = versioned().replace("  title: Web\n", "").replace("  offered: false\n", "")

    [result] = apply(text, tmp_path)

    assert result.action == "unchanged"
    plan = ServicePlan.by_name("web")
    assert (plan.title, plan.offered) == ("Web", False)


def test_a_new_plan_takes_its_name_as_title_and_the_spec_fields(app, tmp_path):
    text = """
- plan: jupyter
  description: notebooks
  offered: true
  one_per_user: false
  defaults: {OMEGA_X: "1"}
"""
    [result] = apply(text, tmp_path)

    assert (result.action, result.version) == ("created", 1)
    plan = ServicePlan.by_name("jupyter")
    assert (plan.title, plan.description, plan.offered, plan.one_per_user, plan.defaults) == (
        "jupyter",
        "notebooks",
        True,
        False,
        {"OMEGA_X": "1"},
    )
    assert plan.current_configuration.steps == []


def test_a_retired_plan_is_reactivated_by_its_spec(app, tmp_path):
    apply(versioned(), tmp_path)
    ServicePlan.by_name("web").active = False
    db.session.commit()

    [result] = apply(versioned(), tmp_path)

    assert (result.action, result.version) == ("reactivated", 1)
    assert ServicePlan.by_name("web").active is True
    assert count(ServiceConfiguration) == 1


# -- validation messages ---------------------------------------------------------------------------


def with_step(step):
    """Plan ``web`` whose second step is ``step`` (a YAML flow mapping)."""
    return f"- plan: web\n  steps:\n    - task: app.ops.tasks.user_signup\n    - {step}\n"


TASK = "task: app.ops.tasks.user_signup"
STEP_ERRORS = [
    ("unknown-field", f"{{{TASK}, command: run}}", "unknown field 'command'"),
    (
        "task-and-script",
        f"{{{TASK}, script: install.sh}}",
        "needs exactly one of `task:` (a python callable) or `script:`",
    ),
    ("neither", "{name: lonely}", "needs exactly one of `task:` (a python callable) or `script:`"),
    ("task-not-dotted", "{task: user_signup}", "task: 'user_signup' is not a dotted path"),
    ("task-not-text", "{task: 5}", "task: 5 is not a dotted path"),
    ("task-not-importable", "{task: app.ops.no_such_module.run}", "task: module 'app.ops.no_such_module' cannot be"),
    ("task-missing", "{task: app.ops.tasks.no_such_task}", "task: 'app.ops.tasks' has no callable 'no_such_task'"),
    ("task-not-callable", "{task: app.ops.specs.MAX_TIMEOUT}", "task: 'app.ops.specs' has no callable 'MAX_TIMEOUT'"),
    ("phase-unknown", f"{{{TASK}, phases: [install, deploy]}}", "phases: 'deploy' is not a phase"),
    ("phases-empty", f"{{{TASK}, phases: []}}", "phases: must be a non-empty list"),
    ("phases-not-list", f"{{{TASK}, phases: 5}}", "phases: must be a non-empty list"),
    ("phases-twice", f"{{{TASK}, phases: [install, check, install]}}", "phases: lists a phase twice"),
    ("timeout-text", f'{{{TASK}, timeout: "60"}}', "timeout: must be a whole number of seconds"),
    ("timeout-zero", f"{{{TASK}, timeout: 0}}", "timeout: must be a whole number of seconds"),
    ("timeout-negative", f"{{{TASK}, timeout: -5}}", "timeout: must be a whole number of seconds"),
    ("timeout-bool", f"{{{TASK}, timeout: true}}", "timeout: must be a whole number of seconds"),
    ("timeout-float", f"{{{TASK}, timeout: 1.5}}", "timeout: must be a whole number of seconds"),
    ("timeout-too-long", f"{{{TASK}, timeout: 86401}}", "timeout: must be a whole number of seconds"),
    ("retries-negative", f"{{{TASK}, retries: -1}}", "retries: must be a whole number between 0 and 10"),
    ("retries-too-many", f"{{{TASK}, retries: 11}}", "retries: must be a whole number between 0 and 10"),
    ("retries-bool", f"{{{TASK}, retries: false}}", "retries: must be a whole number between 0 and 10"),
    ("params-empty-item", f'{{{TASK}, params: "a=1,,b"}}', "params: item 2 is empty"),
    ("params-no-equals", f'{{{TASK}, params: "a=1,b"}}', "params: item 2 'b' is not of the form key=value"),
    ("params-duplicate", f'{{{TASK}, params: "a=1,a=2"}}', "params: key 'a' is given twice"),
    ("params-not-text", f"{{{TASK}, params: {{a: 1}}}}", "params: must be a k=v,... string"),
    ("name-empty", f'{{{TASK}, name: " "}}', "name: must be non-empty text"),
    ("language-unknown", "{script: install.sh, language: ruby}", "language: must be shell or python"),
    ("language-on-task", f"{{{TASK}, language: python}}", "language: applies to scripts only"),
    ("script-empty", 'script: ""', "script: is empty"),
    ("script-dotdot", "{script: ../outside.sh}", "script: '../outside.sh' is outside the scripts directory"),
    ("script-dotdot-inner", "{script: sub/../../outside.sh}", "script: 'sub/../../outside.sh' is outside the"),
    ("script-absolute", "{script: /bin/sh}", "script: '/bin/sh' is outside the scripts directory"),
    ("script-symlink-out", "{script: escape.sh}", "script: 'escape.sh' is outside the scripts directory"),
    ("script-missing", "{script: missing.sh}", "script: 'missing.sh' does not exist under the scripts directory"),
    ("script-directory", "{script: omegaml}", "script: 'omegaml' does not exist under the scripts directory"),
    ("script-not-text", "{script: [install.sh]}", "script: must be a path under the scripts directory"),
    ("script-mapping", "{script: {path: install.sh}}", "script: a mapping needs `git:`"),
    ("git-no-ref", '{script: {git: "https://git.example/r.git", path: a.sh}}', "script.ref: is required for a git"),
    ("git-empty-ref", '{script: {git: "https://git.example/r.git", ref: "", path: a.sh}}', "script.ref: is required"),
    ("git-no-path", '{script: {git: "https://git.example/r.git", ref: main}}', "script.path: is required for a git"),
    (
        "git-path-dotdot",
        '{script: {git: "https://git.example/r.git", ref: main, path: ../a.sh}}',
        "script.path: '../a.sh' must be a relative path inside the repository",
    ),
    (
        "git-path-absolute",
        '{script: {git: "https://git.example/r.git", ref: main, path: /a.sh}}',
        "script.path: '/a.sh' must be a relative path inside the repository",
    ),
    (
        "git-unknown-field",
        '{script: {git: "https://git.example/r.git", ref: main, path: a.sh, branch: x}}',
        "script.branch: unknown field",
    ),
    ("url-no-sha256", '{script: {url: "https://files.example/a.sh"}}', "script.sha256: is required for a url script"),
    ("url-sha256-short", f'{{script: {{url: "https://f.example/a.sh", sha256: "{SHA[:-1]}"}}}}', "script.sha256:"),
    ("url-sha256-not-hex", f'{{script: {{url: "https://f.example/a.sh", sha256: "{"g" * 64}"}}}}', "script.sha256:"),
    ("url-sha256-number", '{script: {url: "https://f.example/a.sh", sha256: 12345}}', "script.sha256: is required"),
    (
        "url-scheme",
        f'{{script: {{url: "ftp://f.example/a.sh", sha256: "{SHA}"}}}}',
        "script.url: 'ftp://f.example/a.sh'",
    ),
    (
        "url-unknown-field",
        f'{{script: {{url: "https://f.example/a.sh", sha256: "{SHA}", md5: x}}}}',
        "script.md5: unknown field",
    ),
    ("language-script", "{script: tool}", "language: cannot tell from 'tool'"),
    (
        "language-git",
        '{script: {git: "https://git.example/r.git", ref: main, path: bin/run}}',
        "language: cannot tell from 'bin/run'",
    ),
    (
        "language-url",
        f'{{script: {{url: "https://f.example/run.rb?x=1.sh", sha256: "{SHA}"}}}}',
        "language: cannot tell from 'https://f.example/run.rb'",
    ),
]


@pytest.mark.parametrize(("step", "message"), [case[1:] for case in STEP_ERRORS], ids=[c[0] for c in STEP_ERRORS])
def test_invalid_step_is_refused_naming_file_plan_step_and_field(app, scripts_dir, step, message):
    with pytest.raises(SpecError) as excinfo:
        parse(with_step(step), scripts_dir)
    text = str(excinfo.value)
    assert text.startswith(f"{SOURCE}: plan 'web': step 2: ")
    assert message in text


PLAN_ERRORS = [
    ("unknown-field", "- plan: web\n  tittle: Web\n", "plan 'web': unknown field 'tittle'"),
    ("name-uppercase", "- plan: Web\n", "item 1: plan: 'Web' is not a valid plan name"),
    ("name-digit-first", "- plan: 1web\n", "item 1: plan: '1web' is not a valid plan name"),
    ("name-too-long", f"- plan: {'w' * 64}\n", "item 1: plan: '" + "w" * 64 + "' is not a valid plan name"),
    ("name-missing", "- title: Web\n", "item 1: plan: None is not a valid plan name"),
    ("name-second-item", "- plan: web\n- plan: a b\n", "item 2: plan: 'a b' is not a valid plan name"),
    ("item-not-mapping", "- web\n", "item 1: must be a mapping with at least `plan:`"),
    ("title-not-text", "- plan: web\n  title: [a]\n", "plan 'web': title: must be text"),
    ("offered-not-bool", '- plan: web\n  offered: "yes"\n', "plan 'web': offered: must be true or false"),
    ("one-per-user-not-bool", "- plan: web\n  one_per_user: 1\n", "plan 'web': one_per_user: must be true or false"),
    ("defaults-list", "- plan: web\n  defaults: [a]\n", "plan 'web': defaults: must be a mapping"),
    ("configuration-list", "- plan: web\n  configuration: [a]\n", "plan 'web': configuration: must be a mapping"),
    ("configuration-unknown", "- plan: web\n  configuration: {steps: []}\n", "plan 'web': configuration.steps:"),
    ("env-list", "- plan: web\n  configuration: {env: [a]}\n", "plan 'web': configuration.env: must be a mapping"),
    ("env-bad-key", "- plan: web\n  configuration: {env: {1X: a}}\n", "plan 'web': configuration.env: '1X' is not"),
    ("env-list-value", "- plan: web\n  configuration: {env: {X: [a]}}\n", "plan 'web': configuration.env.X: must be"),
    ("steps-mapping", "- plan: web\n  steps: {task: x}\n", "plan 'web': steps: must be a list of steps"),
    ("step-not-mapping", "- plan: web\n  steps: [install.sh]\n", "plan 'web': step 1: must be a mapping"),
    ("file-scalar", "just text\n", "must be a list of plans"),
    ("same-plan-twice", "- plan: web\n- plan: api\n- plan: web\n", "plan 'web': is given more than once"),
]


@pytest.mark.parametrize(("text", "message"), [case[1:] for case in PLAN_ERRORS], ids=[c[0] for c in PLAN_ERRORS])
def test_invalid_plan_is_refused_naming_file_plan_and_field(app, tmp_path, text, message):
    with pytest.raises(SpecError) as excinfo:
        parse(text, tmp_path)
    assert str(excinfo.value).startswith(f"{SOURCE}: {message}")


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("- plan: web\n  title: ok\n  description: a: b\n", 3),
        ("- plan: web\n  steps:\n    - task: app.ops.tasks.user_signup\n      phases: [install\n", 5),
        ("- plan: web\n\t title: tab\n", 2),
    ],
    ids=["mapping-in-value", "unclosed-list", "tab"],
)
def test_yaml_syntax_error_reports_the_line(app, tmp_path, text, line):
    with pytest.raises(SpecError) as excinfo:
        parse(text, tmp_path)
    assert str(excinfo.value).startswith(f"{SOURCE}: not valid YAML at line {line}, column ")


@pytest.mark.parametrize("text", ["", "# only a comment\n", "[]\n"])
def test_an_empty_spec_file_defines_no_plans(app, tmp_path, text):
    assert parse(text, tmp_path) == []


def test_a_file_holding_a_single_mapping_is_one_plan(app, tmp_path):
    [plan] = parse("plan: web\ntitle: Web\n", tmp_path)
    assert (plan.name, plan.fields) == ("web", {"title": "Web"})


# -- whole files: nothing is written when one is invalid ------------------------------------------


def test_nothing_is_written_when_any_file_is_invalid(app, tmp_path):
    good = write(tmp_path / "a-good.yaml", "- plan: web\n  steps:\n    - task: app.ops.tasks.user_signup\n")
    bad = write(tmp_path / "b-bad.yaml", "- plan: api\n  steps:\n    - task: app.ops.tasks.no_such_task\n")

    with pytest.raises(SpecError) as excinfo:
        apply_specs(load_spec_files([good, bad], tmp_path, {}, environ={}))
    db.session.commit()

    assert str(excinfo.value).startswith(f"{bad}: plan 'api': step 1: task:")
    assert (count(ServicePlan), count(ServiceConfiguration), count(ServiceStep)) == (0, 0, 0)


def test_a_directory_loads_its_yaml_files_in_order_and_checks_them_all(app, tmp_path):
    specs = tmp_path / "specs"
    specs.mkdir()
    write(specs / "b.yml", "- plan: second\n")
    write(specs / "a.yaml", "- plan: first\n")
    write(specs / "notes.txt", "- plan: ignored\n")
    assert [plan.name for plan in load_spec_files([specs], tmp_path, {}, environ={})] == ["first", "second"]

    write(specs / "c.yaml", "- plan: Third\n")
    with pytest.raises(SpecError, match=r"c\.yaml: item 1: plan: 'Third'"):
        apply_specs(load_spec_files([specs], tmp_path, {}, environ={}))
    assert count(ServicePlan) == 0


def test_the_same_plan_in_two_files_is_an_error(app, tmp_path):
    first = write(tmp_path / "first.yaml", "- plan: web\n")
    second = write(tmp_path / "second.yaml", "- plan: api\n- plan: web\n")

    with pytest.raises(SpecError) as excinfo:
        load_spec_files([first, second], tmp_path, {}, environ={})

    assert str(excinfo.value) == f"{second}: plan 'web' is already defined in {first}"


def test_a_missing_spec_file_is_an_error(app, tmp_path):
    with pytest.raises(SpecError, match="no such file"):
        load_spec_files([tmp_path / "missing.yaml"], tmp_path, {}, environ={})


def test_an_unreadable_spec_file_is_an_error(app, tmp_path):
    spec = tmp_path / "latin1.yaml"
    spec.write_bytes(b"- plan: web\n  title: caf\xe9\n")
    with pytest.raises(SpecError, match="cannot be read"):
        load_spec_files([spec], tmp_path, {}, environ={})


# -- scripts ---------------------------------------------------------------------------------------


def test_pre_installed_scripts_load_with_the_language_of_their_extension(app, scripts_dir):
    text = with_step("{script: install.sh}") + (
        "    - {script: check.py, phases: [check], timeout: 30, retries: 2}\n"
        "    - {script: omegaml/check.sh}\n"
        "    - {script: tool, language: python}\n"
        "    - {script: alias.sh, name: alias}\n"
    )
    [plan] = parse(text, scripts_dir)
    steps = plan.steps[1:]
    assert [(s.kind, s.target, s.language) for s in steps] == [
        ("script", "install.sh", "shell"),
        ("script", "check.py", "python"),
        ("script", "omegaml/check.sh", "shell"),
        ("script", "tool", "python"),
        ("script", "alias.sh", "shell"),
    ]
    assert (steps[1].phases, steps[1].timeout, steps[1].retries) == (["check"], 30, 2)
    assert steps[4].name == "alias"
    assert all(s.repository is None and s.ref is None and s.sha256 is None for s in steps)


def test_scripts_dir_comes_from_the_app_config(app, scripts_dir):
    [plan] = parse_specs(with_step("{script: install.sh}"), SOURCE, app.config["SCRIPTS_DIR"], {}, {})
    assert plan.steps[1].target == "install.sh"
    app.config["SCRIPTS_DIR"] = scripts_dir / "omegaml"
    with pytest.raises(SpecError, match="'install.sh' does not exist"):
        parse_specs(with_step("{script: install.sh}"), SOURCE, app.config["SCRIPTS_DIR"], {}, {})


def test_git_and_url_scripts_load_with_their_source_fields(app, scripts_dir):
    text = with_step('{script: {git: "https://git.example/ops.git", ref: v1.2, path: deploy/install.sh}}') + (
        f'    - {{script: {{url: "https://files.example/setup.py?token=1", sha256: "{SHA.upper()}"}}}}\n'
        '    - {script: {url: "file:///srv/run", sha256: "' + SHA + '"}, language: shell}\n'
    )
    [plan] = parse(text, scripts_dir)
    git, url, local_url = plan.steps[1:]
    assert (git.kind, git.target, git.repository, git.ref, git.sha256, git.language) == (
        "git",
        "deploy/install.sh",
        "https://git.example/ops.git",
        "v1.2",
        None,
        "shell",
    )
    assert (url.kind, url.target, url.repository, url.ref, url.sha256, url.language) == (
        "url",
        "https://files.example/setup.py?token=1",
        None,
        None,
        SHA,
        "python",
    )
    assert (local_url.kind, local_url.target, local_url.language) == ("url", "file:///srv/run", "shell")


def test_script_steps_are_stored_with_every_field(app, scripts_dir):
    text = (
        "- plan: web\n  steps:\n"
        "    - {script: check.py, phases: [check], timeout: 30, retries: 2, params: 'a=1'}\n"
        '    - {script: {git: "https://git.example/ops.git", ref: main, path: deploy/install.sh}}\n'
        f'    - {{script: {{url: "https://files.example/setup.sh", sha256: "{SHA}"}}}}\n'
    )
    apply(text, scripts_dir)
    steps = ServicePlan.by_name("web").current_configuration.steps
    assert [
        (
            s.position,
            s.kind,
            s.target,
            s.language,
            s.repository,
            s.ref,
            s.sha256,
            s.phases,
            s.params,
            s.timeout,
            s.retries,
        )
        for s in steps
    ] == [
        (1, "script", "check.py", "python", None, None, None, ["check"], "a=1", 30, 2),
        (
            2,
            "git",
            "deploy/install.sh",
            "shell",
            "https://git.example/ops.git",
            "main",
            None,
            ["install"],
            "",
            None,
            0,
        ),
        (3, "url", "https://files.example/setup.sh", "shell", None, None, SHA, ["install"], "", None, 0),
    ]


@pytest.mark.parametrize(
    ("script", "names"),
    [
        ("omegaml/check.sh", ("check", "check.sh")),
        ('{git: "https://git.example/ops.git", ref: main, path: deploy/install.sh}', ("install", "install.sh")),
        (f'{{url: "https://files.example/setup.py?t=1", sha256: "{SHA}"}}', ("setup", "setup.py")),
    ],
    ids=["pre-installed", "git", "url"],
)
def test_a_script_step_is_named_after_its_file_by_default(app, scripts_dir, script, names):
    [plan] = parse(with_step(f"{{script: {script}}}"), scripts_dir)
    assert plan.steps[1].name in names


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- plan: web\n  1: a\n  extra: b\n", "plan 'web': unknown field"),
        ("- plan: web\n  configuration: {1: a, extra: b}\n", "plan 'web': configuration."),
        (
            "- plan: web\n  steps:\n    - task: app.ops.tasks.user_signup\n      on: [install]\n      extra: 1\n",
            "plan 'web': step 1: unknown field",
        ),
    ],
    ids=["plan-keys", "configuration-keys", "step-keys"],
)
def test_unknown_keys_of_mixed_types_are_refused_with_a_spec_error(app, scripts_dir, text, message):
    with pytest.raises(SpecError, match=re.escape(message)):
        parse(text, scripts_dir)


def test_a_null_byte_in_a_script_path_is_refused_with_a_spec_error(app, scripts_dir):
    with pytest.raises(SpecError, match=re.escape("plan 'web': step 2: script:")):
        parse(with_step('{script: "install\\0.sh"}'), scripts_dir)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f"- plan: web\n  title: {'t' * 201}\n", "plan 'web': title:"),
        (
            with_step(f'{{script: {{git: "https://git.example/ops.git", ref: {"r" * 201}, path: a.sh}}}}'),
            "plan 'web': step 2: script.ref:",
        ),
        (
            with_step(f'{{script: {{url: "https://files.example/{"u" * 1000}.sh", sha256: "{SHA}"}}}}'),
            "plan 'web': step 2: script.url:",
        ),
    ],
    ids=["title", "git-ref", "url"],
)
def test_values_longer_than_their_columns_are_refused(app, scripts_dir, text, message):
    with pytest.raises(SpecError, match=re.escape(message)):
        parse(text, scripts_dir)


# -- resolve_script --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "relative",
    ["../outside.sh", "sub/../../outside.sh", "escape.sh", "linked-dir/outside.sh", "/bin/sh", "ABSOLUTE", "a\x00.sh"],
)
def test_resolve_script_refuses_paths_outside_the_scripts_dir(scripts_dir, relative):
    (scripts_dir / "linked-dir").symlink_to(scripts_dir.parent)
    if relative == "ABSOLUTE":
        relative = str(scripts_dir / "install.sh")  # absolute, even when inside
    assert resolve_script(scripts_dir, relative) is None


@pytest.mark.parametrize(
    ("relative", "target"),
    [
        ("install.sh", "install.sh"),
        ("omegaml/check.sh", "omegaml/check.sh"),
        ("sub/../install.sh", "install.sh"),
        ("alias.sh", "install.sh"),
        ("missing.sh", "missing.sh"),
    ],
)
def test_resolve_script_returns_the_real_path_inside_the_scripts_dir(scripts_dir, relative, target):
    assert resolve_script(scripts_dir, relative) == (scripts_dir / target).resolve()


def test_resolve_script_accepts_a_scripts_dir_reached_through_a_symlink(scripts_dir, tmp_path):
    link = tmp_path / "scripts-link"
    link.symlink_to(scripts_dir)
    assert resolve_script(link, "install.sh") == (scripts_dir / "install.sh").resolve()
    assert resolve_script(link, "../outside.sh") is None


METRICS_SPEC = """
- plan: metered
  metrics:
    - {name: requests, kind: api, action: request, aggregation: count, unit: requests}
    - {name: resources, kind: api, aggregation: unique, field: request_resource_name}
"""


def test_plans_define_their_metrics_in_the_spec(app):
    from app.models import Metric
    from app.ops.specs import plan_spec

    config = app.config
    (result,) = apply_specs(parse_specs(METRICS_SPEC, "m.yaml", config["SCRIPTS_DIR"], spec_fallbacks(config)))
    db.session.commit()
    metrics = {m.name: m for m in db.session.scalars(select(Metric))}
    assert metrics["requests"].action == "request" and metrics["resources"].action is None
    assert metrics["resources"].field == "request_resource_name" and metrics["requests"].unit == "requests"
    (again,) = apply_specs(parse_specs(METRICS_SPEC, "m.yaml", config["SCRIPTS_DIR"], spec_fallbacks(config)))
    assert again.action == "unchanged"
    changed = METRICS_SPEC.replace("unit: requests", "unit: calls")
    (updated,) = apply_specs(parse_specs(changed, "m.yaml", config["SCRIPTS_DIR"], spec_fallbacks(config)))
    db.session.commit()
    assert (
        updated.action == "updated"
        and db.session.scalar(select(Metric.unit).where(Metric.name == "requests")) == "calls"
    )
    exported = plan_spec(ServicePlan.by_name("metered"))
    assert exported["metrics"][0] == {
        "aggregation": "count",
        "action": "request",
        "kind": "api",
        "name": "requests",
        "unit": "calls",
    }


@pytest.mark.parametrize(
    "metric, message",
    [
        ("{name: x, kind: api, aggregation: median}", "aggregation: 'median' is not one of"),
        ("{name: x, kind: api, aggregation: unique}", "a unique count needs the data field"),
        ("{name: x, aggregation: count}", "kind: a text of 1 to 50 characters is required"),
        ("{name: x, kind: api, colour: red}", "unknown field 'colour'"),
    ],
)
def test_bad_metrics_are_refused_with_the_reason(app, metric, message):
    text = f"- plan: metered\n  metrics:\n    - {metric}\n"
    with pytest.raises(SpecError, match=re.escape(message)):
        parse_specs(text, "m.yaml", app.config["SCRIPTS_DIR"], spec_fallbacks(app.config))


def test_plans_and_metrics_carry_their_prices_in_the_spec(app):
    from app.models import Metric

    text = """
- plan: priced
  base_fee: 4900
  metrics:
    - name: requests
      kind: api
      unit_price: 0.05
      included: 10000
      tiers: [{up_to: 100000, unit_price: "0.05"}, {up_to: null, unit_price: "0.02"}]
"""
    apply_specs(parse_specs(text, "p.yaml", app.config["SCRIPTS_DIR"], spec_fallbacks(app.config)))
    db.session.commit()
    assert ServicePlan.by_name("priced").base_fee == 4900
    metric = db.session.scalar(select(Metric))
    assert (metric.unit_price, metric.included, len(metric.tiers)) == ("0.05", "10000", 2)
    for bad, message in [("base_fee: -1", "base_fee: a whole number"), ("base_fee: 9.5", "base_fee: a whole number")]:
        with pytest.raises(SpecError, match=message):
            parse_specs(f"- plan: priced\n  {bad}\n", "p.yaml", app.config["SCRIPTS_DIR"], spec_fallbacks(app.config))
    bad_tiers = (
        "- plan: priced\n  metrics:\n"
        "    - {name: x, kind: api, tiers: [{up_to: null, unit_price: 1}, {up_to: 5, unit_price: 1}]}\n"
    )
    with pytest.raises(SpecError, match="only the last tier may be open"):
        parse_specs(bad_tiers, "p.yaml", app.config["SCRIPTS_DIR"], spec_fallbacks(app.config))


ALIAS_BOMB = """
- plan: bomb
  defaults:
    a: &a [x, x, x, x, x, x, x, x, x]
    b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
    c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
    d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
    e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
    f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
"""


@pytest.mark.parametrize(
    "text, words",
    [
        ("- plan: deep\n  defaults: " + "[" * 5000, ["nested more than"]),
        (ALIAS_BOMB, ["expands to more than", "aliases"]),
    ],
)
def test_a_spec_nested_too_deep_or_expanding_too_far_is_refused_by_createservice(runner, tmp_path, text, words):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    result = runner.invoke(args=["createservice", "--specs", str(path)])
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 1 and len(lines) == 1, result.output
    assert "Traceback" not in result.output and all(word in lines[0] for word in words), lines
    assert ServicePlan.by_name("bomb") is None and ServicePlan.by_name("deep") is None


def test_a_script_name_too_long_for_the_file_system_is_a_message_not_a_crash(app):
    with pytest.raises(SpecError) as caught:
        text = "- plan: p\n  steps:\n    - script: " + "x" * 300 + ".sh\n"
        parse_specs(text, "t.yaml", app.config["SCRIPTS_DIR"], {})
    assert "step 1: script:" in str(caught.value)
