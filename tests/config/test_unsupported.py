"""Azure ML files mlform does not run yet: one problem each, saying so, at the key that
says what the file is."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from tests.conftest import Ran

Cli = Callable[..., Ran]
Make = Callable[[Mapping[str, str]], Path]


def test_each_unsupported_azure_file_is_one_problem(cli: Cli, make_workspace: Make) -> None:
    root = make_workspace(
        {
            "workspace.yml": "name: later\n",
            "src/train.py": "print('hi')\n",
            # no $schema: told by its type
            "runconfigs/parallel.yml": """
                type: parallel
                compute: azureml:cpu-cluster
                inputs: {images: {type: uri_folder, path: ../data}}
                task: {type: run_function, code: ../src, entry_script: score.py}
                """,
            "runconfigs/spark.yml": """
                $schema: https://azuremlschemas.azureedge.net/latest/sparkJob.schema.json
                type: spark
                code: ../src
                entry: {file: train.py}
                resources: {instance_type: standard_e4s_v3, runtime_version: "3.3"}
                """,
            "pipelines/nightly.yml": """
                $schema: https://azuremlschemas.azureedge.net/latest/schedule.schema.json
                name: nightly
                display_name: nightly retraining
                trigger:
                  type: cron
                  expression: "0 1 * * *"
                  time_zone: UTC
                create_job: ./train.yml
                """,
            "data/snowflake.yml": """
                $schema: http://azureml/sdk-2-0/DataImport.json
                type: mltable
                name: snowflake
                source:
                  type: database
                  query: select * from my_table
                  connection: azureml:my_snowflake_connection
                path: azureml://datastores/workspaceblobstore/paths/snowflake/
                """,
            "data/import.yml": """
                name: imported
                type: import
                path: azureml://datastores/workspaceblobstore/paths/imported/
                """,
            "endpoints/batch.yml": """
                $schema: https://azuremlschemas.azureedge.net/latest/batchEndpoint.schema.json
                name: mnist-batch
                description: A batch endpoint for scoring images
                auth_mode: aad_token
                """,
        }
    )
    ran = cli("validate", cwd=root)
    assert ran.err.splitlines() == [
        "data/import.yml:2:7: error: not supported yet: data imports; mlform does not read "
        "data/import.yml (export the data to a file and declare it with path:)",
        "data/snowflake.yml:1:10: error: not supported yet: data imports; mlform does not "
        "read data/snowflake.yml (export the data to a file and declare it with path:)",
        "endpoints/batch.yml:1:10: error: not supported yet: batch endpoints; mlform does not "
        "read endpoints/batch.yml (remove the file or keep it outside this workspace)",
        "pipelines/nightly.yml:1:10: error: $schema says this is a schedule file, but "
        "pipelines/ holds pipeline declarations; move it to schedules/ or correct $schema",
        "runconfigs/parallel.yml:1:7: error: not supported yet: parallel jobs; mlform does "
        "not read runconfigs/parallel.yml (remove the file or keep it outside this workspace)",
        "runconfigs/spark.yml:1:10: error: not supported yet: Spark jobs; mlform does not "
        "read runconfigs/spark.yml (remove the file or keep it outside this workspace)",
        "validation failed: 6 errors",
    ]
