"""A bare git repository on disk as the remote, a developer's clone that pushes to it,
and `mlform agent run` as its own process, its JSON log read as it comes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest


def git(*args: str, cwd: Path) -> str:
    done = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=True, env=_git_env()
    )
    return done.stdout.strip()


def _git_env() -> dict[str, str]:
    return {
        **os.environ,
        "GIT_AUTHOR_NAME": "Dev",
        "GIT_AUTHOR_EMAIL": "dev@example.com",
        "GIT_COMMITTER_NAME": "Dev",
        "GIT_COMMITTER_EMAIL": "dev@example.com",
    }


@dataclass
class Remote:
    bare: Path
    clone: Path  # a developer's working copy

    def push(self, files: Mapping[str, str], message: str) -> str:
        """Write `files` (dedented) in the clone, commit and push; return the commit."""
        for rel, text in files.items():
            path = self.clone / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        git("add", "-A", cwd=self.clone)
        git("commit", "-q", "-m", message, cwd=self.clone)
        git("push", "-q", "origin", "main", cwd=self.clone)
        return git("rev-parse", "HEAD", cwd=self.clone)


@pytest.fixture
def remote(tmp_path: Path) -> Remote:
    bare = tmp_path / "remote.git"
    bare.mkdir()
    git("init", "-q", "--bare", "-b", "main", cwd=bare)
    clone = tmp_path / "dev"
    git("clone", "-q", str(bare), str(clone), cwd=tmp_path)
    git("checkout", "-q", "-b", "main", cwd=clone)
    return Remote(bare, clone)


@dataclass
class AgentProcess:
    process: subprocess.Popen[str]
    folder: Path  # its working copy: the workspace it applies
    events: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    cursor: int = 0  # events before it were matched by an earlier wait

    def read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            try:
                event = json.loads(line)
            except ValueError:
                event = {"event": "text", "line": line.rstrip()}
            with self.lock:
                self.events.append(event)

    def wait_for(
        self, match: Callable[[dict[str, Any]], bool], timeout: float, *, anew: bool = True
    ) -> dict[str, Any]:
        """The first event that matches, after the one the previous wait found (`anew`),
        or since the start."""
        deadline = time.monotonic() + timeout
        seen = self.cursor if anew else 0
        while time.monotonic() < deadline:
            with self.lock:
                for index in range(seen, len(self.events)):
                    if match(self.events[index]):
                        if anew:
                            self.cursor = index + 1
                        return self.events[index]
                seen = len(self.events)
            assert self.process.poll() is None or seen < len(self.events), self.log()
            time.sleep(0.05)
        raise AssertionError(f"no such event within {timeout} s:\n{self.log()}")

    def log(self) -> str:
        with self.lock:
            return "\n".join(json.dumps(e) for e in self.events[-40:])

    @property
    def url(self) -> str:
        event = self.wait_for(lambda e: e["event"] == "listening", 30, anew=False)
        return str(event["message"].split(" ")[3])

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 120) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout)


@pytest.fixture
def start_agent(tmp_path: Path) -> Iterator[Callable[..., AgentProcess]]:
    started: list[AgentProcess] = []
    readers: list[threading.Thread] = []

    def start(remote: Remote, *args: str, env: Mapping[str, str] | None = None) -> AgentProcess:
        folder = tmp_path / "agent"
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mlform.cli.main",
                "agent",
                "run",
                "--repo",
                str(remote.bare),
                "--folder",
                str(folder),
                "--port",
                "0",
                *args,
            ],
            cwd=tmp_path,
            env={**os.environ, **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        agent = AgentProcess(process, folder)
        reader = threading.Thread(target=agent.read, daemon=True)
        reader.start()
        started.append(agent)
        readers.append(reader)
        return agent

    yield start
    for agent, reader in zip(started, readers, strict=True):
        if agent.process.poll() is None:
            agent.process.kill()
        agent.process.wait()
        reader.join()
        for pipe in (agent.process.stdout, agent.process.stderr):
            assert pipe is not None
            pipe.close()
