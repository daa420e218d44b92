"""`mlform validate`: every mistake at once, each at its file, line and column, with a fix."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from tests.conftest import Ran

Cli = Callable[..., Ran]
Make = Callable[[Mapping[str, str]], Path]

# One workspace, a mistake or two per file, of every kind a user makes.
MESSY = {
    "workspace.yml": """
        name: messy
        datastores:
          - name: local
            path: store
            default: true
            contaner_name: blobs
          - name: archive
            path: archive
            default: true
        """,
    "data/iris.csv": "a,b\n1,2\n",
    "data/folder/part-0.csv": "a,b\n1,2\n",
    # Clean, in Azure ML's own format, with numbers and booleans as tag values.
    "data/iris.yml": """
        $schema: https://azuremlschemas.azureedge.net/latest/data.schema.json
        name: iris
        type: uri_file
        path: iris.csv
        tags: {rows: 150, ratio: 0.5, public: true}
        """,
    "data/broken.yml": """
        name: broken
        path: [iris.csv
        description: never closed
        """,
    "data/indented.yml": """
        name: indented
          path: iris.csv
        """,
    "data/twice.yml": """
        name: twice
        type: uri_file
        path: iris.csv
        path: iris.csv
        """,
    "data/typo.yml": """
        nmae: typo
        type: uri_file
        path: iris.csv
        """,
    "data/tagged.yml": """
        name: tagged
        path: iris.csv
        type: uri_file
        tags: [raw, v1]
        """,
    "data/kind.yml": """
        name: kind
        type: uri-file
        path: iris.csv
        """,
    "data/pathless.yml": """
        name: pathless
        type: uri_file
        """,
    "data/spaced.yml": """
        name: my data
        type: uri_file
        path: iris.csv
        """,
    "data/gone.yml": """
        name: gone
        type: uri_file
        path: gone.csv
        """,
    "data/again.yml": """
        name: iris
        type: uri_file
        path: iris.csv
        """,
    "data/remote.yml": """
        name: remote
        path: datastore://nope/x.csv
        """,
    "data/azure.yml": """
        name: azure
        type: uri_file
        path: azureml://datastores/locl/paths/x.csv
        """,
    # data/kind and data/broken have errors of their own: depending on them is not one more.
    "data/a.yml": """
        name: a
        path: folder
        depends_on: [data/b, data/kind, data/broken]
        """,
    "data/b.yml": """
        name: b
        path: folder
        depends_on:
          - data/a
          - data/iriss
        """,
    "data/single.yml": """
        name: single
        type: uri_file
        path: folder
        """,
    "data/empty.yml": "",
    "environments/train.yml": """
        name: train
        pip: scikit-learn
        requirements: requirements.txt
        conda_file: conda.yml
        """,
}

RELATIVE = "(it is relative to this file)"
NAME_RULE = "a name starts with a letter or digit and has only letters, digits, '-', '_' and '.'"

EXPECTED = [
    "data/a.yml:3:14: error: dependency cycle: data/a → data/b → data/a; "
    "remove this depends_on entry or the one at data/b.yml:4:5",
    "data/azure.yml:3:7: error: unknown datastore 'locl' (did you mean 'local'?); "
    "declare it under datastores: in workspace.yml",
    "data/b.yml:5:5: error: depends_on 'data/iriss' is not declared in this workspace "
    "(did you mean 'data/iris'?)",
    "data/broken.yml:2:7: error: invalid YAML: this '[' starts a list that is not closed "
    "(expected ',' or ']' by line 3); add the missing ']', "
    "or put the value in quotes if '[' is part of the text",
    "data/empty.yml:1:1: error: file is empty: declare a data asset here "
    "(it needs at least 'name' and 'path'), or delete the file",
    "data/gone.yml:3:7: error: path 'gone.csv' does not exist (looked for data/gone.csv); "
    f"create it, or correct the path {RELATIVE}",
    "data/indented.yml:2:3: error: invalid YAML: 'path' is indented deeper than the line "
    "above it, so it reads as part of that line's value; line it up with the keys above",
    "data/iris.yml:2:7: error: duplicate data name 'iris': also declared at data/again.yml:1:7; "
    "rename one of them",
    "data/kind.yml:2:7: error: type must be one of uri_file, uri_folder, mltable, "
    "not 'uri-file' (did you mean 'uri_file'?)",
    "data/pathless.yml:1:1: error: missing required key 'path': add the file or folder it "
    "points at, e.g. path: iris.csv (relative to this file), or a datastore:// or fsspec URL",
    "data/remote.yml:2:7: error: unknown datastore 'nope' (declared: archive, local); "
    "declare it under datastores: in workspace.yml",
    "data/single.yml:3:7: error: 'folder' is a folder but type is uri_file; use type: uri_folder",
    f"data/spaced.yml:1:7: error: name 'my data' is not valid: {NAME_RULE}",
    "data/tagged.yml:4:7: error: tags must be a mapping of tag names to values, not a list; "
    "write one 'key: value' per line, indented under tags:",
    "data/twice.yml:4:1: error: duplicate key 'path': only the last one would count; "
    "remove one of them",
    "data/typo.yml:1:1: error: unknown key 'nmae' (did you mean 'name'?)",
    "environments/train.yml:2:6: error: pip must be a list, not a string ('scikit-learn'); "
    "write a list, with one '- item' per line or as [scikit-learn]",
    "environments/train.yml:3:15: error: requirements file 'requirements.txt' does not exist "
    f"(looked for environments/requirements.txt); create it, or correct the path {RELATIVE}",
    "environments/train.yml:4:13: error: conda file 'conda.yml' does not exist "
    f"(looked for environments/conda.yml); create it, or correct the path {RELATIVE}",
    "workspace.yml:6:5: error: unknown key 'contaner_name' in datastores[0] "
    "(did you mean 'container_name'?)",
    "workspace.yml:9:14: error: datastores 'local' and 'archive' are both default; "
    "mark only one with default: true",
    "validation failed: 21 errors",
]


def test_every_mistake_is_reported_once_at_its_place(cli: Cli, make_workspace: Make) -> None:
    root = make_workspace(MESSY)
    ran = cli("validate", cwd=root)
    assert ran.err.splitlines() == EXPECTED
    assert ran.out == ""
    assert ran.code == 1


def test_a_clean_workspace_is_valid(cli: Cli, make_workspace: Make) -> None:
    root = make_workspace(
        {
            "workspace.yml": """
                name: clean
                datastores:
                  - name: local
                    path: store
                    default: true
                """,
            "data/iris.csv": "a,b\n1,2\n",
            "data/iris.yml": """
                $schema: https://azuremlschemas.azureedge.net/latest/data.schema.json
                name: iris
                version: 3
                type: uri_file
                path: iris.csv
                tags: {rows: 150, ratio: 0.5, public: true}
                """,
            "data/copy.yml": """
                name: copy
                type: uri_file
                path: azureml://datastores/local/paths/iris.csv
                depends_on: [data/iris]
                """,
            # An Azure ML environment with its conda file beside it: one declaration.
            "environments/train.yml": """
                $schema: https://azuremlschemas.azureedge.net/latest/environment.schema.json
                name: train
                image: python:3.11-slim
                conda_file: conda.yml
                environment_variables:
                  SEED: 0
                  DEBUG: true
                """,
            "environments/conda.yml": """
                name: train
                channels: [conda-forge]
                dependencies:
                  - python=3.11
                  - pip:
                      - scikit-learn==1.5.2
                """,
            "environments/serve.yml": """
                $schema: https://azuremlschemas.azureedge.net/latest/environment.schema.json
                name: serve
                version: 1
                description: Built from a Dockerfile, as Azure ML does.
                build:
                  path: ../docker
                  dockerfile_path: Dockerfile
                os_type: linux
                inference_config:
                  liveness_route: {port: 5001, path: /}
                """,
            "docker/Dockerfile": "FROM python:3.11-slim\n",
        }
    )
    ran = cli("validate", cwd=root)
    assert (ran.code, ran.err) == (0, "")
    assert ran.out == f"Valid: 5 resources in {root}\n"


def test_warnings_are_shown_and_do_not_fail(cli: Cli, make_workspace: Make) -> None:
    root = make_workspace(
        {
            "workspace.yml": "name: warned\n",
            "environments/train.yml": """
                name: train
                environment_variables:
                  DEBUG: yes
                  RATE: 1.10
                  SEED: 0
                """,
            "environment/extra.yml": "name: extra\n",
        }
    )
    ran = cli("validate", cwd=root)
    assert ran.err.splitlines() == [
        "environment/extra.yml:1:1: warning: mlform does not read environment/ "
        "(did you mean environments/?); move its files to environments/ to declare them",
        "environments/train.yml:3:10: warning: YAML reads yes as True, so DEBUG would be "
        "'true'; put it in quotes to keep it as written: 'yes'",
        "environments/train.yml:4:9: warning: YAML reads 1.10 as 1.1, so RATE would be "
        "'1.1'; put it in quotes to keep it as written: '1.10'",
    ]
    assert ran.out == f"Valid: 2 resources in {root}\n"
    assert ran.code == 0


def test_warnings_are_listed_with_errors_but_not_counted(cli: Cli, make_workspace: Make) -> None:
    root = make_workspace(
        {
            "workspace.yml": "name: mixed\n",
            "environments/train.yml": "name: train\nenvironment_variables: {DEBUG: on}\n",
            "environments/serve.yml": "name: serve\nimage: 3.11\n",
        }
    )
    ran = cli("validate", cwd=root)
    assert ran.err.splitlines() == [
        "environments/serve.yml:2:8: error: image must be a string, not a number (3.11); "
        "put it in quotes to keep it as text: '3.11'",
        "environments/train.yml:2:32: warning: YAML reads on as True, so DEBUG would be "
        "'true'; put it in quotes to keep it as written: 'on'",
        "validation failed: 1 error",
    ]
    assert ran.code == 1


def test_a_broken_workspace_file_hides_no_error_and_invents_none(
    cli: Cli, make_workspace: Make
) -> None:
    root = make_workspace(
        {
            "workspace.yml": "name: [broken\ndatastores:\n  - name: lake\n",
            "data/x.yml": "name: x\npath: datastore://lake/x.csv\ndepends_on: [data/y]\n",
        }
    )
    ran = cli("validate", cwd=root)
    # The datastores are unknown while workspace.yml is broken: no "unknown datastore 'lake'".
    assert ran.err.splitlines() == [
        "data/x.yml:3:14: error: depends_on 'data/y' is not declared in this workspace; "
        "correct it or remove the entry",
        "workspace.yml:1:7: error: invalid YAML: this '[' starts a list that is not closed "
        "(expected ',' or ']' by line 2); add the missing ']', "
        "or put the value in quotes if '[' is part of the text",
        "validation failed: 2 errors",
    ]


def test_a_missing_build_context_is_reported(cli: Cli, make_workspace: Make) -> None:
    root = make_workspace(
        {
            "workspace.yml": "name: built\n",
            "environments/serve.yml": "name: serve\nbuild:\n  path: docker\n",
        }
    )
    ran = cli("validate", cwd=root)
    assert ran.err.splitlines() == [
        "environments/serve.yml:3:9: error: build context folder 'docker' does not exist "
        "(looked for environments/docker); create it, or correct the path "
        "(it is relative to this file)",
        "validation failed: 1 error",
    ]


def test_a_datastore_with_a_wrong_key_is_still_known(cli: Cli, make_workspace: Make) -> None:
    root = make_workspace(
        {
            "workspace.yml": """
                name: lakes
                datastores:
                  - name: lake
                    path: lake
                    storage_options: [anon]
                """,
            "data/x.yml": "name: x\npath: datastore://lake/x.csv\n",
        }
    )
    ran = cli("validate", cwd=root)
    assert ran.err.splitlines() == [
        "workspace.yml:5:22: error: datastores[0].storage_options must be a mapping, "
        "not a list; write one 'key: value' per line, indented under storage_options:",
        "validation failed: 1 error",
    ]


def test_a_file_in_the_wrong_folder_is_one_error(cli: Cli, make_workspace: Make) -> None:
    root = make_workspace(
        {
            "workspace.yml": "name: misplaced\n",
            "data/train.yml": """
                $schema: https://azuremlschemas.azureedge.net/latest/environment.schema.json
                name: train
                pip: [numpy]
                """,
            "environments/conda.yml": "name: lonely\ndependencies: [numpy]\n",
        }
    )
    ran = cli("validate", cwd=root)
    assert ran.err.splitlines() == [
        "data/train.yml:1:10: error: $schema says this is an environment file, but data/ holds "
        "data declarations; move it to environments/ or correct $schema",
        "environments/conda.yml:1:1: error: this looks like a conda file (it has "
        "dependencies:), but no environment names it; point one at it with conda_file: "
        "conda.yml, or move it out of environments/",
        "validation failed: 2 errors",
    ]


def test_values_yaml_reads_as_other_types_get_a_quoting_hint(
    cli: Cli, make_workspace: Make
) -> None:
    root = make_workspace(
        {
            "workspace.yml": "name: typed\n",
            "data/iris.csv": "a\n",
            "data/iris.yml": """
                name: iris
                version: 1.10
                type: uri_file
                path: iris.csv
                tags: {updated: 2024-05-01}
                """,
        }
    )
    ran = cli("validate", cwd=root)
    assert ran.err.splitlines() == [
        "data/iris.yml:2:10: error: version must be a version such as 3 or '2024.1', "
        "not a number (1.10); put it in quotes to keep it as text: '1.10'",
        "data/iris.yml:5:17: error: tags.updated must be a string, a number or true or false, "
        "not a date (2024-05-01); put it in quotes to keep it as text: '2024-05-01'",
        "validation failed: 2 errors",
    ]


def test_path_written_from_the_workspace_root_gets_the_right_one(
    cli: Cli, make_workspace: Make
) -> None:
    root = make_workspace(
        {
            "workspace.yml": "name: paths\n",
            "data/iris.csv": "a\n",
            "data/iris.yml": "name: iris\ntype: uri_file\npath: data/iris.csv\n",
        }
    )
    ran = cli("validate", cwd=root)
    assert ran.err.splitlines() == [
        "data/iris.yml:3:7: error: path 'data/iris.csv' does not exist "
        "(looked for data/data/iris.csv); paths are relative to this file: write 'iris.csv'",
        "validation failed: 1 error",
    ]


def test_unknown_keys_without_a_close_match_list_the_known_ones(
    cli: Cli, make_workspace: Make
) -> None:
    root = make_workspace(
        {
            "workspace.yml": "name: keys\nregion: westeurope\n",
            "environments/e.yml": "name: e\nimage: python:3.11\ndepends_on: [environment/e]\n",
        }
    )
    ran = cli("validate", cwd=root)
    assert ran.err.splitlines() == [
        "environments/e.yml:3:14: error: a resource cannot depend on itself; remove this entry",
        "workspace.yml:2:1: error: unknown key 'region'; expected one of: $schema, name, "
        "display_name, description, tags, location, state, alerts, agent, container_registry, "
        "datastores, secrets",
        "validation failed: 2 errors",
    ]


def test_no_traceback_for_odd_yaml(cli: Cli, make_workspace: Make) -> None:
    root = make_workspace(
        {
            "workspace.yml": "name: odd\n",
            "data/list.yml": "- name: a\n",
            "data/complex.yml": "name: k\npath: .\n? [a, b]\n: c\n",
            "data/numbered.yml": "name: n\npath: .\n1: one\n",
            "environments/merged.yml": """
                base: &base {name: merged}
                <<: *base
                image: python:3.11
                """,
        }
    )
    (root / "data" / "latin1.yml").write_bytes(b"name: caf\xe9\n")
    ran = cli("validate", cwd=root)
    assert "Traceback" not in ran.err
    assert ran.err.splitlines() == [
        "data/complex.yml:3:3: error: invalid YAML: a list or a mapping cannot be a key; "
        "write a plain key",
        "data/latin1.yml:1:10: error: not UTF-8 text (invalid continuation byte); "
        "save the file with UTF-8 encoding",
        "data/list.yml:1:1: error: expected a mapping of keys such as 'name: …', found a list",
        "data/numbered.yml:3:1: error: unknown key '1'; expected one of: $schema, name, "
        "version, type, path, description, tags, protect, depends_on",
        "environments/merged.yml:1:1: error: unknown key 'base'; expected one of: $schema, "
        "name, version, description, tags, image, build, conda_file, pip, requirements, "
        "environment_variables, inference_config, os_type, protect, depends_on",
        "validation failed: 5 errors",
    ]


def test_unknown_addresses_suggest_the_kind_or_the_name(cli: Cli, make_workspace: Make) -> None:
    root = make_workspace(
        {
            "workspace.yml": "name: refs\n",
            "data/iris.yml": "name: iris\npath: .\n",
            "data/wine.yml": "name: wine\npath: .\ndepends_on: [dataset/iris, data/irsi]\n",
        }
    )
    ran = cli("validate", cwd=root)
    assert ran.err.splitlines() == [
        "data/wine.yml:3:14: error: depends_on 'dataset/iris' is not declared in this "
        "workspace (did you mean 'data/iris'?)",
        "data/wine.yml:3:28: error: depends_on 'data/irsi' is not declared in this "
        "workspace (did you mean 'data/iris'?)",
        "validation failed: 2 errors",
    ]


def test_a_yaml_file_named_by_a_declaration_is_not_one(cli: Cli, make_workspace: Make) -> None:
    root = make_workspace(
        {
            "workspace.yml": "name: named\n",
            "data/params.yml": "name: params\ntype: uri_file\npath: params-values.yaml\n",
            "data/params-values.yaml": "learning_rate: 0.1\nlayers: [64, 32]\n",
        }
    )
    ran = cli("validate", cwd=root)
    assert (ran.code, ran.err) == (0, "")
    assert ran.out == f"Valid: 2 resources in {root}\n"


def test_errors_point_at_what_is_wrong_in_azure_job_files(cli: Cli, make_workspace: Make) -> None:
    job = "$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json\n"
    root = make_workspace(
        {
            "workspace.yml": "name: located\n",
            "src/train.py": "print('hi')\n",
            # an input that is declared but wrong: said what is wrong with it, once
            "runconfigs/mode.yml": job
            + """command: python train.py --data ${{inputs.training_data}} --lr ${{inputs.lr}}
code: ../src
inputs:
  training_data:
    type: uri_folder
    path: ../src
    mode: mount
  lr: 0.1
""",
            # a URL no datastore scheme reads: at the input's path:
            "runconfigs/url.yml": job
            + """command: python train.py --data ${{inputs.training_data}}
code: ../src
inputs:
  training_data:
    type: uri_folder
    path: nosuchscheme://data/iris/
""",
            # two files with one name: each at its name: line
            "data/a.yml": """
                $schema: https://azuremlschemas.azureedge.net/latest/data.schema.json
                name: iris
                path: ../src
                """,
            "data/b.yml": """
                $schema: https://azuremlschemas.azureedge.net/latest/data.schema.json
                description: the same data, again
                name: iris
                path: ../src
                """,
        }
    )
    ran = cli("validate", cwd=root)
    assert ran.err.splitlines() == [
        "data/b.yml:3:7: error: duplicate data name 'iris': also declared at data/a.yml:2:7; "
        "rename one of them",
        "runconfigs/mode.yml:8:11: error: inputs.training_data.mode must be one of ro_mount, "
        "rw_mount, download, direct, upload, eval_mount, eval_download, not 'mount' "
        "(did you mean 'rw_mount'?)",
        "runconfigs/url.yml:7:11: error: unknown URL scheme 'nosuchscheme://'; use a local "
        "path or "
        "an fsspec URL",
        "validation failed: 3 errors",
    ]


# Azure ML's documented pair: an endpoint file and a deployment file naming it.
AZURE_ENDPOINT = """
    $schema: https://azuremlschemas.azureedge.net/latest/managedOnlineEndpoint.schema.json
    name: my-endpoint
    auth_mode: key
    traffic:
      blue: 100
    """
AZURE_DEPLOYMENT = """
    $schema: https://azuremlschemas.azureedge.net/latest/managedOnlineDeployment.schema.json
    name: blue
    endpoint_name: my-endpoint
    model: azureml:my-model@latest
    code_configuration:
      code: ../score
      scoring_script: score.py
    environment: azureml:my-env@latest
    instance_type: Standard_DS3_v2
    instance_count: {count}
    """


def _endpoint_workspace(make_workspace: Make, deployment: str) -> Path:
    return make_workspace(
        {
            "workspace.yml": "name: serving\n",
            "endpoints/endpoint.yml": AZURE_ENDPOINT,
            "endpoints/blue-deployment.yml": deployment,
            "score/score.py": "def init():\n    pass\n\n\ndef run(data):\n    return data\n",
            "environments/env.yml": "name: my-env\nimage: python:3.11-slim\n",
            "models/model.yml": "name: my-model\npath: ../score\n",
        }
    )


def test_a_broken_deployment_is_one_error_not_a_traffic_error_too(
    cli: Cli, make_workspace: Make
) -> None:
    deployment = AZURE_DEPLOYMENT.format(count=1).replace("instance_type", "instance_typ")
    root = _endpoint_workspace(make_workspace, deployment)
    ran = cli("validate", cwd=root)
    assert ran.err.splitlines() == [
        "endpoints/blue-deployment.yml:9:1: error: unknown key 'instance_typ' "
        "(did you mean 'instance_type'?)",
        "validation failed: 1 error",
    ]


def test_a_broken_inline_deployment_is_one_error(cli: Cli, make_workspace: Make) -> None:
    root = make_workspace(
        {
            "workspace.yml": "name: serving\n",
            "endpoints/iris.yml": """
                name: iris
                traffic: {blue: 100}
                deployments:
                  - name: blue
                    model: azureml:my-model@latest
                    environment: azureml:my-env@latest
                    code_configuration: {code: ../score, scoring_script: score.py}
                    computee: local
                """,
            "score/score.py": "def run(data):\n    return data\n",
            "environments/env.yml": "name: my-env\nimage: python:3.11-slim\n",
            "models/model.yml": "name: my-model\npath: ../score\n",
        }
    )
    ran = cli("validate", cwd=root)
    assert ran.err.splitlines() == [
        "endpoints/iris.yml:8:5: error: unknown key 'computee' in deployments[0] "
        "(did you mean 'compute'?)",
        "validation failed: 1 error",
    ]


def test_instance_count_is_bounded(cli: Cli, make_workspace: Make) -> None:
    root = _endpoint_workspace(make_workspace, AZURE_DEPLOYMENT.format(count=100000))
    ran = cli("validate", cwd=root)
    assert ran.err.splitlines() == [
        "endpoints/blue-deployment.yml:10:17: error: instance_count is out of range: 100000 "
        "is greater than the maximum of 64; use at most 64",
        "validation failed: 1 error",
    ]
    root = _endpoint_workspace(make_workspace, AZURE_DEPLOYMENT.format(count=64))
    assert cli("validate", cwd=root).code == 0


def test_control_characters_from_a_file_are_escaped_in_messages(
    cli: Cli, make_workspace: Make
) -> None:
    root = make_workspace(
        {
            "workspace.yml": "name: escapes\n",
            "data/iris.csv": "a\n1\n",
            "data/iris.yml": 'name: iris\ntype: uri_file\npath: iris.csv\n"\\n\\e[2J\\u202e": 1\n',
        }
    )
    ran = cli("validate", cwd=root)
    assert ran.err.splitlines() == [
        "data/iris.yml:4:1: error: unknown key '\\n\\x1b[2J\\u202e'; expected one of: $schema, "
        "name, version, type, path, description, tags, protect, depends_on",
        "validation failed: 1 error",
    ]


def test_a_path_too_long_for_the_system_is_reported_not_raised(
    cli: Cli, make_workspace: Make
) -> None:
    long = "x" * 300
    root = make_workspace(
        {"workspace.yml": "name: long\n", "data/iris.yml": f"name: iris\npath: {long}\n"}
    )
    ran = cli("validate", cwd=root)
    assert ran.err.splitlines() == [
        f"data/iris.yml:2:7: error: path '{long}' does not exist (looked for data/{long}); "
        "create it, or correct the path (it is relative to this file)",
        "validation failed: 1 error",
    ]


def test_an_alias_bomb_is_one_error_for_validate_and_plan(cli: Cli, make_workspace: Make) -> None:
    laughs = ['  a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in range(1, 9):
        anchor, previous = chr(ord("a") + level), chr(ord("a") + level - 1)
        laughs.append(f"  {anchor}: &{anchor} [" + ",".join([f"*{previous}"] * 9) + "]")
    bomb = "name: bomb\ntype: uri_file\npath: iris.csv\ntags:\n" + "\n".join(laughs) + "\n"
    root = make_workspace({"workspace.yml": "name: bombed\n", "data/iris.csv": "a\n1\n"})
    (root / "data" / "bomb.yml").write_text(bomb, encoding="utf-8")
    expected = [
        "data/bomb.yml:10:10: error: aliases make this file stand for more than 100,000 values "
        "(*e alone for 66,430); write the values out, or use fewer nested aliases",
        "validation failed: 1 error",
    ]
    for command in ("validate", "plan"):
        ran = cli(command, cwd=root)
        assert (ran.code, ran.err.splitlines()) == (1, expected)
