"""What an earlier state left behind, when its file is gone.

A state file deleted (or lost) while its endpoints still serve would make the next apply
start from zero: register every version again from 1, and start a second router and
deployment beside the ones still running, which nothing would record any more. What
outlives the state says whether one existed: the processes recorded beside it (each
router's `router.json`, each instance's `instance.json`) and the registered content of
the datastores kept inside the workspace. A datastore outside it (a shared folder, a
bucket) may as well hold another workspace's versions, so it is no evidence.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mlform.config.refs import LocalPath
from mlform.config.specs import DatastoreSpec
from mlform.kinds.endpoint import instances, routing
from mlform.kinds.endpoint.instances import Instance
from mlform.kinds.endpoint.targets import targets
from mlform.loader import Config
from mlform.shownpath import shown


@dataclass(frozen=True, slots=True)
class Leftovers:
    routers: list[tuple[str, routing.Router]]  # endpoint name, its running router
    instances: list[Instance]  # deployment instances still running
    datastores: list[tuple[str, Path, int]]  # name, folder, registered files in it

    def __bool__(self) -> bool:
        return bool(self.routers or self.instances or self.datastores)

    def describe(self, root: Path) -> list[str]:
        found = [
            f"the router of endpoint {name} runs (pid {r.pid}, port {r.port})"
            for name, r in self.routers
        ]
        found += [
            f"deployment {i.endpoint}/{i.deployment} runs ({i.compute} {_handle(i)}, port {i.port})"
            for i in self.instances
        ]
        found += [
            f"datastore {name} ({shown(folder, root)}) holds {count} registered "
            f"file{'s' if count != 1 else ''}"
            for name, folder, count in self.datastores
        ]
        return found


def find(config: Config) -> Leftovers:
    """What shows that a state existed where there is none now."""
    state_dir = config.home
    home = state_dir / "endpoints"
    names = sorted(p.name for p in home.iterdir() if p.is_dir()) if home.is_dir() else []
    routers = []
    for name in names:
        running = routing.current(state_dir, name)
        if running is not None and running.alive():
            routers.append((name, running))
    known = targets()
    live = [
        i for i in instances.recorded_in(home) if i.compute in known and known[i.compute].alive(i)
    ]
    return Leftovers(routers, live, _datastores(config))


def stop(leftovers: Leftovers, state_dir: Path, log: Callable[[str], None]) -> None:
    """Stop every process an earlier state started, so the new one knows all that runs."""
    known = targets()
    for inst in leftovers.instances:
        known[inst.compute].stop(inst)
        instances.forget(inst, state_dir / "endpoints")
        log(f"stopped deployment {inst.endpoint}/{inst.deployment} ({_handle(inst)})")
    for name, running in leftovers.routers:
        routing.stop(state_dir, name)
        log(f"stopped the router of endpoint {name} (pid {running.pid})")


def refusal(state: str, leftovers: Leftovers, root: Path) -> str:
    found = "\n".join(f"  - {line}" for line in leftovers.describe(root))
    return (
        f"there is no state at {state}, but an earlier one existed:\n{found}\n"
        "Starting from zero would register every version again from 1 and leave what runs "
        "unknown to the new state. Restore the state file if you can (a backup, git, "
        "another machine); or run `mlform apply --reinit` to stop what runs and start a new "
        "state (registered files are kept and reused)"
    )


def _datastores(config: Config) -> list[tuple[str, Path, int]]:
    found = []
    for spec in config.specs.values():
        if not isinstance(spec, DatastoreSpec) or not isinstance(spec.location, LocalPath):
            continue
        folder = (config.root / spec.location.path).resolve()
        if not folder.is_relative_to(config.root.resolve()):
            continue
        blobs = folder / "blobs" / "sha256"
        count = sum(1 for p in blobs.glob("*/*") if p.is_file()) if blobs.is_dir() else 0
        if count:
            found.append((spec.name, folder, count))
    return found


def _handle(instance: Instance) -> str:
    if instance.compute == "local":
        return f"pid {instance.handle.partition('@')[0]}"
    return f"container {instance.handle[:12]}"
