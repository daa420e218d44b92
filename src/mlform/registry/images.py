"""The image registry: each build of an image, with what went into it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import duckdb

Reader = Callable[[str, Sequence[Any]], list[tuple[Any, ...]]]

_COLUMNS = (
    "name, version, reference, image_id, digest, model, environment, env_digest, "
    "script_digest, base_image, size, pushed, seconds, strftime(created_at, '%Y-%m-%d %H:%M:%S')"
)


@dataclass(frozen=True, slots=True)
class ImageBuild:
    name: str
    version: str
    reference: str  # repository:tag as built (with the registry when pushed)
    image_id: str
    digest: str  # of what went in
    model: str  # name:version
    environment: str  # name:version
    env_digest: str
    script_digest: str
    base_image: str
    size: int
    pushed: str | None  # repository@sha256:… once pushed
    seconds: float
    created_at: str = ""

    def write(self, con: duckdb.DuckDBPyConnection, apply_id: str) -> None:
        con.execute(
            "insert into images values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, now(), ?)",
            [
                self.name,
                self.version,
                self.reference,
                self.image_id,
                self.digest,
                self.model,
                self.environment,
                self.env_digest,
                self.script_digest,
                self.base_image,
                self.size,
                self.pushed,
                self.seconds,
                apply_id,
            ],
        )


def builds(read: Reader, name: str | None = None) -> list[ImageBuild]:
    """Every build, oldest first (of one image, with `name`)."""
    sql = f"select {_COLUMNS} from images"
    params: list[Any] = []
    if name is not None:
        sql += " where name = ?"
        params.append(name)
    return [ImageBuild(*row) for row in read(sql + " order by name, created_at", params)]
