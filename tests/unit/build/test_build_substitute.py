"""Post-build variable substitution: Flux's envsubst rules, strict mode and opt-outs."""

from __future__ import annotations

import base64

import pytest

from fluxd.api.kustomize import KUSTOMIZATION_RESOURCE
from fluxd.build import BuildOptions, BuildSettings, SubstitutionError, build, collect_variables
from fluxd.build.substitute import ExpansionError, expand, referenced_variables
from tests.unit.build.conftest import Tree

STRICT = BuildSettings(strict_substitution=True)
VARIABLES = {"cluster_env": "prod", "region": "eu-central-1", "empty": "", "name": "Realm-IX"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("env: ${cluster_env}", "env: prod", id="plain"),
        pytest.param("${cluster_env}-${region}", "prod-eu-central-1", id="two-in-a-row"),
        pytest.param("${missing:=dev}", "dev", id="assign-default-unset"),
        pytest.param("${empty:=dev}", "dev", id="assign-default-empty"),
        pytest.param("${cluster_env:=dev}", "prod", id="assign-default-set"),
        pytest.param("${missing:-dev}", "dev", id="minus-default"),
        pytest.param("${missing=dev}", "dev", id="equals-default"),
        pytest.param("${missing:=${region}}", "eu-central-1", id="nested-default"),
        pytest.param("${missing:=a-${region}-b}", "a-eu-central-1-b", id="mixed-default"),
        pytest.param("$${cluster_env}", "${cluster_env}", id="escaped"),
        pytest.param("cost: $$5", "cost: $5", id="escaped-dollar"),
        pytest.param("echo $HOME ${cluster_env}", "echo $HOME prod", id="bare-dollar-untouched"),
        pytest.param("${#region}", "12", id="length"),
        pytest.param("${name,,}", "realm-ix", id="lower"),
        pytest.param("${name^^}", "REALM-IX", id="upper"),
        pytest.param("${cluster_env^}", "Prod", id="upper-first"),
        pytest.param("${region:3}", "central-1", id="substring-offset"),
        pytest.param("${region:3:7}", "central", id="substring-length"),
        pytest.param("${region:-1}", "eu-central-1", id="colon-minus-is-default-not-offset"),
        pytest.param("${region/-/_}", "eu_central-1", id="replace-first"),
        pytest.param("${region//-/_}", "eu_central_1", id="replace-all"),
        pytest.param("${region/#eu/us}", "us-central-1", id="replace-prefix"),
        pytest.param("${region/%1/2}", "eu-central-2", id="replace-suffix"),
        pytest.param("${region#*-}", "central-1", id="trim-shortest-prefix"),
        pytest.param("${region##*-}", "1", id="trim-longest-prefix"),
        pytest.param("${region%-*}", "eu-central", id="trim-shortest-suffix"),
        pytest.param("${region%%-*}", "eu", id="trim-longest-suffix"),
        pytest.param("no variables here", "no variables here", id="no-references"),
    ],
)
def test_expansion_follows_flux_envsubst(text: str, expected: str) -> None:
    assert expand(text, variables=VARIABLES, strict=True) == expected


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        pytest.param("${missing}", 'variable not set (strict mode): "missing"', id="unset"),
        pytest.param("${missing^^}", 'variable not set (strict mode): "missing"', id="unset-op"),
        pytest.param("${region", "missing closing brace", id="unclosed"),
        pytest.param("${}", "unable to parse variable name", id="empty-name"),
        pytest.param("${region-x}", "missing closing brace", id="dash-without-colon"),
    ],
)
def test_strict_mode_and_bad_syntax_are_errors(text: str, problem: str) -> None:
    with pytest.raises(ExpansionError) as caught:
        expand(text, variables=VARIABLES, strict=True)

    assert str(caught.value) == problem


def test_unset_variable_is_empty_when_not_strict() -> None:
    assert expand("[${missing}]", variables=VARIABLES, strict=False) == "[]"


def test_inline_variables_win_over_referenced_ones_and_later_references_win() -> None:
    merged = collect_variables(
        inline={"region": "inline"},
        referenced=[{"region": "configmap", "tier": "first"}, {"tier": "second\n"}],
    )

    assert merged == {"region": "inline", "tier": "second"}


def test_secret_data_is_decoded_for_substitution() -> None:
    secret = {"data": {"token": base64.b64encode(b"s3cr3t").decode()}}
    configmap = {"data": {"tier": "gold"}}

    assert referenced_variables("Secret", secret) == {"token": "s3cr3t"}
    assert referenced_variables("ConfigMap", configmap) == {"tier": "gold"}
    with pytest.raises(SubstitutionError, match="'token' is not valid base64"):
        referenced_variables("Secret", {"data": {"token": "*s3cr3t*"}})


# An unset variable is an error only with Flux's StrictPostBuildSubstitutions.
STRICT = BuildSettings(strict_substitution=True)
CONFIGMAP = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: apps
data:
  env: ${cluster_env:=dev}
  region: "${region}"
  replicas: ${count}
  script: echo $HOME and $${literal}
"""
OPTED_OUT = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: script
  namespace: apps
  labels:
    kustomize.toolkit.fluxcd.io/substitute: disabled
data:
  run.sh: echo ${not_a_flux_var}
"""


def manifests(tree: Tree, *documents: str) -> None:
    files = {f"apps/m{index}.yaml": document for index, document in enumerate(documents)}
    tree(
        {
            "apps/kustomization.yaml": "resources:\n"
            + "".join(f"  - {name[5:]}\n" for name in files),
            **files,
        }
    )


async def test_build_substitutes_variables_after_kustomize(tree: Tree) -> None:
    manifests(tree, CONFIGMAP, OPTED_OUT)
    options = BuildOptions.from_spec(
        {"postBuild": {"substitute": {"region": "eu-central-1", "count": "3"}}}
    )

    objects = await build(artifact_root=tree({}), path="apps", options=options)

    by_name = {obj["metadata"]["name"]: obj for obj in objects}
    settings, script = by_name["settings"], by_name["script"]

    assert settings["data"] == {
        "env": "dev",
        "region": "eu-central-1",
        # Substitution happens in the YAML text, so an unquoted number stays a number.
        "replicas": 3,
        "script": "echo $HOME and ${literal}",
    }
    assert script["data"] == {"run.sh": "echo ${not_a_flux_var}"}


async def test_strict_error_names_the_variable_and_the_object(tree: Tree) -> None:
    manifests(tree, CONFIGMAP)
    options = BuildOptions.from_spec({"postBuild": {"substitute": {"region": "eu"}}})

    with pytest.raises(SubstitutionError) as caught:
        await build(artifact_root=tree({}), path="apps", options=options, settings=STRICT)

    assert caught.value.object_id == "ConfigMap/apps/settings"
    assert '"count"' in str(caught.value)
    assert "ConfigMap/apps/settings" in str(caught.value)


async def test_values_never_appear_in_substitution_errors(tree: Tree) -> None:
    manifests(tree, CONFIGMAP)
    options = BuildOptions.from_spec({"postBuild": {"substitute": {"region": "hunter2-token"}}})

    with pytest.raises(SubstitutionError) as caught:
        await build(artifact_root=tree({}), path="apps", options=options, settings=STRICT)

    assert "hunter2" not in str(caught.value)


async def test_an_undefined_variable_becomes_empty_by_default_as_in_flux(tree: Tree) -> None:
    manifests(tree, CONFIGMAP)
    options = BuildOptions.from_spec({"postBuild": {"substitute": {"region": "eu"}}})

    (settings,) = await build(artifact_root=tree({}), path="apps", options=options)

    assert settings["data"]["replicas"] is None


async def test_without_any_variable_nothing_is_substituted(tree: Tree) -> None:
    manifests(tree, CONFIGMAP)
    options = BuildOptions.from_spec({"postBuild": {"substitute": {}}})

    (settings,) = await build(artifact_root=tree({}), path="apps", options=options)

    assert settings["data"]["env"] == "${cluster_env:=dev}"


async def test_variables_from_references_are_used(tree: Tree) -> None:
    manifests(tree, CONFIGMAP)
    options = BuildOptions.from_spec(
        {"postBuild": {"substituteFrom": [{"kind": "ConfigMap", "name": "cluster-vars"}]}}
    )
    variables = collect_variables(inline={}, referenced=[{"region": "us", "count": "1"}])

    (settings,) = await build(
        artifact_root=tree({}), path="apps", options=options, variables=variables
    )

    assert (settings["data"]["region"], settings["data"]["replicas"]) == ("us", 1)


async def test_invalid_variable_name_is_refused(tree: Tree) -> None:
    manifests(tree, CONFIGMAP)
    options = BuildOptions.from_spec({"postBuild": {"substitute": {"bad-name": "x"}}})

    with pytest.raises(SubstitutionError, match="'bad-name' var name is invalid"):
        await build(artifact_root=tree({}), path="apps", options=options)


async def test_always_strategy_substitutes_defaults_without_any_variable(tree: Tree) -> None:
    manifests(tree, CONFIGMAP)
    options = BuildOptions.from_spec({"postBuild": {"substituteStrategy": "Always"}})

    (settings,) = await build(artifact_root=tree({}), path="apps", options=options)

    assert settings["data"]["env"] == "dev"
    assert settings["data"]["script"] == "echo $HOME and ${literal}"


async def test_with_variables_strategy_is_the_default_behaviour(tree: Tree) -> None:
    manifests(tree, CONFIGMAP)
    options = BuildOptions.from_spec({"postBuild": {"substituteStrategy": "WithVariables"}})

    (settings,) = await build(artifact_root=tree({}), path="apps", options=options)

    assert settings["data"]["env"] == "${cluster_env:=dev}"


def test_the_schema_accepts_only_flux_substitute_strategies() -> None:
    schema = KUSTOMIZATION_RESOURCE.openapi_schema()
    post_build = schema["properties"]["spec"]["properties"]["postBuild"]

    assert post_build["properties"]["substituteStrategy"]["enum"] == ["WithVariables", "Always"]
