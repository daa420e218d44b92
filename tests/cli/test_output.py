"""The one JSON shape of `--json`: records as objects, times as ISO-8601 in UTC."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from mlform.cli.output import iso_time, to_json
from mlform.containers.engine import connect
from mlform.errors import EngineUnavailable
from tests.conftest import EXAMPLE, Ran, mlform_process, stop_endpoints
from tests.containers.conftest import unavailable
from tests.ports import free_port
from tests.storage.conftest import Served, served  # noqa: F401  (fixture)


@dataclass(frozen=True)
class Record:
    name: str
    created_at: str
    ended_at: float | None
    where: PurePosixPath
    tags: dict[str, str]
    parts: tuple[int, ...]


def test_records_become_objects_with_iso_times() -> None:
    local = datetime(2026, 12, 4, 18, 30, 5).astimezone()  # as DuckDB prints a timestamptz
    record = Record(
        "x", local.strftime("%Y-%m-%d %H:%M:%S"), 1_800_000_000.5, PurePosixPath("a/b"), {}, (1,)
    )
    assert to_json([record]) == [
        {
            "name": "x",
            "created_at": local.astimezone(UTC).isoformat(timespec="seconds"),
            "ended_at": "2027-01-15T08:00:00+00:00",
            "where": "a/b",
            "tags": {},
            "parts": [1],
        }
    ]
    assert iso_time(None) is None and iso_time("") is None
    assert iso_time(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)) == "2026-01-02T03:04:05+00:00"


# Every list and show command, with the keys of each object it prints.
RUN_KEYS = {
    "id", "experiment", "runconfig", "parent_id", "name", "display_name", "status",
    "created_at", "started_at", "ended_at", "duration", "commit", "branch", "remote",
    "dirty", "snapshot_id", "inputs", "environment", "compute", "command", "exit_code",
    "error", "log_tail", "run_dir", "params", "tags", "metrics",
}  # fmt: skip


@pytest.fixture(scope="module")
def applied(tmp_path_factory: pytest.TempPathFactory, env_cache: Path) -> Iterator[Path]:
    """The whole example (data, environment, run, pipeline, model, image, endpoint), applied
    once for every command below."""

    try:
        connect().close()
    except EngineUnavailable as err:
        unavailable(f"{err} (the example builds an image)")
    root = tmp_path_factory.mktemp("json") / "iris"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns(".mlform"))
    spec = root / "endpoints" / "iris.yml"
    spec.write_text(spec.read_text().replace("port: 5080", f"port: {free_port()}"))
    env = {"MLFORM_CACHE_DIR": str(env_cache), "NO_COLOR": "1"}
    proc = mlform_process("apply", "--yes", cwd=root, env=env)
    out, err = proc.communicate(timeout=900)
    try:
        assert proc.returncode == 0, out + err
        (root.parent / "apply.out").write_text(out)  # for the test of what apply shows
        yield root
    finally:
        stop_endpoints(root)


Cli = Callable[..., Ran]


def as_json(cli: Cli, root: Path, *args: str) -> Any:
    ran = cli(*args, "--json", cwd=root)
    assert ran.code == 0, ran.err
    return json.loads(ran.out)


@pytest.mark.parametrize(
    ("args", "keys"),
    [
        (("runs", "list"), RUN_KEYS),
        (("experiments", "list"), {"name", "runs", "last_run", "last_status"}),
        (("pipelines", "list"), {"name", "version", "steps", "inputs", "last_run", "last_status"}),
        (("pipelines", "runs", "retrain"), {"id", "status", "started", "duration", "steps"}),
        (("state", "list"), {"address", "status", "digest", "source", "protect"}),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, tuple) else "",
)
def test_list_commands_print_an_array_of_objects(
    cli: Cli, applied: Path, args: tuple[str, ...], keys: set[str]
) -> None:
    found = as_json(cli, applied, *args)
    assert isinstance(found, list) and found
    for item in found:
        assert set(item) == keys


DATA_KEYS = {
    "name", "version", "content_digest", "spec", "manifest", "location", "size",
    "created_at", "archived",
}  # fmt: skip
MODEL_KEYS = {
    "name", "version", "digest", "type", "framework", "files", "size", "tags", "description",
    "source", "run_id", "metrics", "datastore", "created_at", "archived", "folder",
}  # fmt: skip
IMAGE_KEYS = {
    "name", "version", "reference", "image_id", "digest", "model", "environment",
    "env_digest", "script_digest", "base_image", "size", "pushed", "seconds", "created_at",
}  # fmt: skip
ENDPOINT_KEYS = {"name", "url", "auth_mode", "router_up", "deployments"}


@pytest.mark.parametrize(
    ("args", "keys"),
    [
        (("data", "list"), DATA_KEYS),
        (("models", "list"), MODEL_KEYS),
        (("images", "list"), IMAGE_KEYS),
        (("endpoints", "list"), ENDPOINT_KEYS),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, tuple) else "",
)
def test_registry_lists_print_an_array_of_objects(
    cli: Cli, applied: Path, args: tuple[str, ...], keys: set[str]
) -> None:
    found = as_json(cli, applied, *args)
    assert isinstance(found, list) and found
    for item in found:
        assert set(item) == keys
        if "created_at" in item:  # ISO-8601 with its offset, always UTC
            assert datetime.fromisoformat(item["created_at"]).utcoffset() == timedelta(0)


def test_runs_show_is_one_object(cli: Cli, applied: Path) -> None:
    run = as_json(cli, applied, "runs", "show", "train")
    assert set(run) == RUN_KEYS | {"artifacts", "children", "target"}
    assert (run["runconfig"], run["status"], run["children"], run["target"]) == (
        "runconfig/train",
        "completed",
        [],
        "local",
    )
    assert datetime.fromisoformat(run["started_at"]).utcoffset() is not None
    assert set(run["metrics"]) >= {"accuracy"}
    assert all(set(a) == {"path", "size"} for a in run["artifacts"])


def test_models_show_adds_lineage_and_versions(cli: Cli, applied: Path) -> None:
    model = as_json(cli, applied, "models", "show", "iris-classifier")
    assert set(model) == MODEL_KEYS | {"lineage", "used_by", "versions"}
    assert model["versions"] == ["1"]
    assert model["lineage"]["runconfig"] == "runconfig/train"


def test_data_show_lists_versions(cli: Cli, applied: Path) -> None:
    data = as_json(cli, applied, "data", "show", "iris")
    assert set(data) == DATA_KEYS | {"versions"}
    assert (data["name"], data["version"], data["versions"]) == ("iris", "1", ["1"])


def test_images_show_is_one_build(cli: Cli, applied: Path) -> None:
    image = as_json(cli, applied, "images", "show", "iris-scorer")
    assert set(image) == IMAGE_KEYS
    assert (image["name"], image["version"]) == ("iris-scorer", "1")


def test_endpoints_show_has_its_deployments(cli: Cli, applied: Path) -> None:
    endpoint = as_json(cli, applied, "endpoints", "show", "iris")
    assert set(endpoint) == ENDPOINT_KEYS
    assert [d["deployment"] for d in endpoint["deployments"]] == ["blue"]
    assert endpoint["router_up"] is True


def test_pipelines_show_has_its_last_run(cli: Cli, applied: Path) -> None:
    pipeline = as_json(cli, applied, "pipelines", "show", "retrain")
    assert set(pipeline) == {
        "name", "version", "steps", "inputs", "last_run", "last_status", "last_run_steps",
    }  # fmt: skip
    assert set(pipeline["last_run_steps"]) == set(pipeline["steps"])
    assert pipeline["last_status"] == "completed"


def test_state_show_is_one_object(cli: Cli, applied: Path) -> None:
    record = as_json(cli, applied, "state", "show", "data/iris")
    assert set(record) == {
        "address", "status", "error", "digest", "source", "protect", "spec", "outputs",
        "components",
    }  # fmt: skip
    assert record["status"] == "applied"


def test_an_empty_list_is_an_empty_array(cli: Cli, example: Path) -> None:
    for args in (("runs", "list"), ("models", "list"), ("images", "list"), ("data", "list")):
        assert as_json(cli, example, *args) == []


def test_apply_shows_phases_and_keeps_build_output_in_logs(applied: Path) -> None:
    shown = (applied.parent / "apply.out").read_text().splitlines()
    assert (
        "    environment/sklearn-env: building virtual environment (2 packages, cpython-3.11); "
        "pip's output: .mlform/logs/environment-sklearn-env.log"
    ) in shown or not (applied / ".mlform/logs/environment-sklearn-env.log").exists()
    assert [line for line in shown if line.startswith("    image/")] == [
        "    image/iris-scorer: building iris-demo/iris-scorer:1; "
        "Docker's output: .mlform/logs/image-iris-scorer.log"
    ]
    build_log = (applied / ".mlform/logs/image-iris-scorer.log").read_text()
    assert "Successfully tagged iris-demo/iris-scorer:1" in build_log
    started = [line for line in shown if " started: python train.py " in line]
    assert started and all(str(applied) not in line for line in started)
    assert all(" --data .mlform/runs/" in line for line in started)


def test_text_shows_paths_from_the_workspace(cli: Cli, applied: Path) -> None:
    run = cli("runs", "show", "train", cwd=applied)
    folder = next(line for line in run.out.splitlines() if line.startswith("  run folder:"))
    assert folder.split()[-1].startswith(".mlform/runs/train_")
    command = next(line for line in run.out.splitlines() if line.startswith("  command:"))
    assert " --data .mlform/runs/train_" in command and str(applied) not in command
    endpoint = cli("endpoints", "show", "iris", cwd=applied)
    log = next(line for line in endpoint.out.splitlines() if line.startswith("    log:"))
    assert log.split()[-1].startswith(".mlform/endpoints/iris/blue/")


def test_no_output_shows_the_signature_of_a_data_url(
    cli: Cli,
    make_workspace: Callable[[dict[str, str]], Path],
    served: Served,  # noqa: F811
) -> None:
    (served.folder / "iris.csv").write_text("a,b\n1,2\n")
    sas = "sv=2022-11-02&se=2030-01-01&sp=r&sig=s3cr3t%3D"
    root = make_workspace(
        {
            "workspace.yml": "name: sas\n",
            "data/iris.yml": f"name: iris\ntype: uri_file\npath: {served.url}/iris.csv?{sas}\n",
        }
    )
    shown = f"{served.url}/iris.csv?sv=2022-11-02&se=2030-01-01&sp=r&sig=REDACTED"
    ran = [cli("apply", "--yes", cwd=root), cli("data", "show", "iris", cwd=root)]
    ran += [cli(*c, cwd=root) for c in (("data", "list", "--json"), ("plan", "--json"))]
    ran += [cli("state", "show", "data/iris", cwd=root)]
    assert [r.code for r in ran] == [0, 0, 0, 0, 0]
    assert f"  stored at:   {shown}\n" in ran[1].out
    assert json.loads(ran[2].out)[0]["location"] == shown
    (root / "data" / "iris.yml").write_text(
        f"name: iris\ntype: uri_file\npath: {served.url}/gone.csv?{sas}\n"
    )
    failed = cli("plan", cwd=root)
    assert failed.code == 1
    assert f"{served.url}/gone.csv?sv=2022-11-02&se=2030-01-01&sp=r&sig=REDACTED" in failed.err
    for r in (*ran, failed):
        assert "s3cr3t" not in r.out + r.err
