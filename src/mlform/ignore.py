"""Ignore rules for snapshots, matched as git does.

The folders above a path were decided when the walk entered them
(an ignored one is not entered), so only the path itself is tested, and in each ignore
file the last line that matches it decides. A pattern with no slash but a trailing one
("*.pyc", "build/") tests the name; any other ("/data/raw/", "docs/*.md") the path from
the ignore file's folder. pathspec translates each line to a regex; pathspec's own
GitIgnoreSpec is not used to decide, because it judges a path together with its parent
folders and ranks file matches above folder ones, which prunes folders git keeps (`*`,
`!*/`, `!*.py` would drop every subfolder). The combined regexes only answer "could any
line match?" quickly, so a typical file costs one regex call.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from mlform.errors import MlformError

if TYPE_CHECKING:  # imported when a rule is first compiled: a tree without ignore files
    from pathspec.patterns.gitignore.spec import GitIgnoreSpecPattern  # never needs it

IGNORE_FILES = (".amlignore", ".gitignore")  # the first one present in a folder is used


class Rules:
    """One ignore file, compiled once: pattern i is line i + 1 of the file."""

    __slots__ = (
        "last_first",
        "lines",
        "name",
        "name_rx",
        "name_source",
        "path_prefixes",
        "path_rx",
    )

    def __init__(self, name: str, text: str) -> None:
        self.name = name
        self.lines = [line.rstrip("\r") for line in text.split("\n")]
        # (index, excludes, regex matching the path itself, tests the name alone)
        self.last_first: list[tuple[int, bool, re.Pattern[str], bool]] = []
        by_name: list[str] = []
        by_path: list[str] = []
        prefixes: list[str] = []
        for index, line in enumerate(self.lines):
            pattern = _pattern(line)
            if pattern.include is None or pattern.regex is None:
                continue
            regex = pattern.regex
            name_only = _by_name(line)
            self.last_first.append((index, pattern.include, _itself(regex), name_only))
            source = _GROUP.sub("(?:", regex.pattern)
            if name_only:
                by_name.append(
                    source[len(_ANY_FOLDER) :] if source.startswith(_ANY_FOLDER) else f".*?{source}"
                )
            else:
                by_path.append(source[1:] if source.startswith("^") else f".*?{source}")
                prefixes.append(_literal_prefix(line) if source.startswith("^") else "")
        self.last_first.reverse()
        self.name_source = alternatives(by_name)
        self.name_rx = compile_alternatives(self.name_source)
        self.path_rx = compile_alternatives(alternatives(by_path))
        self.path_prefixes = tuple(prefixes)

    def paths_can_match(self, rel: str) -> bool:
        """Whether a path pattern can match something in folder `rel` (relative to ours)."""
        return self.path_rx is not None and any(
            rel.startswith(p) if len(rel) >= len(p) else p.startswith(rel)
            for p in self.path_prefixes
        )

    def decide(self, rel: str, tail: str) -> int | None:
        """For `tail` (a name, '/'-ended for a folder) in folder `rel`: None when no line
        matches, -1 when a negation keeps it, else the index of the line excluding it."""
        name_rx, path_rx = self.name_rx, self.path_rx
        path = rel + tail
        if (name_rx is None or name_rx.match(tail) is None) and (
            path_rx is None or path_rx.match(path) is None
        ):
            return None
        for index, excludes, regex, name_only in self.last_first:
            if regex.search(tail if name_only else path) is not None:
                return index if excludes else -1
        return None

    def without(self, index: int) -> Rules:
        lines = list(self.lines)
        lines[index] = ""
        return Rules(self.name, "\n".join(lines))


_GROUP = re.compile(r"\(\?P<\w+>")  # named groups, which cannot repeat in one regex
_ANY_FOLDER = "^(?:.+/)?"  # how pathspec starts a pattern that may match at any depth
_GLOB = re.compile(r"[*?\[\\]")


def _itself(regex: re.Pattern[str]) -> re.Pattern[str]:
    """`regex` made to match a path itself, not only one of its parent folders.

    pathspec's regexes also match what is inside a folder they name: "a/b" becomes
    `^a/b(?:(?P<ps_d>/)|$)`, true of "a/b/c" by its parent. Such a match must end where
    the path does. "foo/**" becomes `^foo/`, true of what is under foo/ but not of foo/
    itself, so something must follow. "*" and "**" become `.`, true of anything.
    """
    source = regex.pattern
    if "ps_d" in regex.groupindex:
        return re.compile(f"(?:{source})\\Z")
    if source.endswith("/"):
        return re.compile(f"(?:{source})(?s:.)")
    return regex


def _pattern(line: str) -> GitIgnoreSpecPattern:
    # start-up: pathspec's gitignore patterns, only when a snapshot has ignore files
    from pathspec.patterns.gitignore.spec import GitIgnoreSpecPattern

    if line.rstrip().endswith("/**/"):
        # git: the folders inside foo/, not foo/ itself; pathspec makes it foo/
        line = line.rstrip() + "*/"
    try:
        return GitIgnoreSpecPattern(line)
    except ValueError:  # git skips a line it cannot read as a pattern ("!", "/"); so do we
        return GitIgnoreSpecPattern("")


def _body(line: str) -> str:
    body = line.rstrip()
    return body[1:] if body.startswith("!") else body


def _by_name(line: str) -> bool:
    """Whether the pattern tests a name at any depth: it has no slash but a trailing one."""
    body = _body(line).rstrip("/")
    while body.startswith("**/"):
        body = body[3:]
    return "/" not in body


def _literal_prefix(line: str) -> str:
    """What every path a slash pattern matches starts with (its text up to a wildcard)."""
    body = _body(line).lstrip("/")
    glob = _GLOB.search(body)
    return body[: glob.start()] if glob else body


def alternatives(sources: list[str]) -> str | None:
    return "(?s:" + "|".join(f"(?:{s})" for s in sources) + ")" if sources else None


def compile_alternatives(source: str | None) -> re.Pattern[str] | None:
    if source is None:
        return None
    try:
        return re.compile(source)
    except re.error:  # never expected; then every path gets the exact test, only slower
        return re.compile("")


# An ignore file in force: (its rules, the current folder relative to the file's folder).
Active = tuple[tuple[Rules, str], ...]


def read_rules(folder: str, names: set[str] | None, shown_as: str) -> Rules | None:
    for name in IGNORE_FILES:
        if names is not None and name not in names:
            continue
        path = os.path.join(folder, name)
        try:
            with open(path, encoding="utf-8-sig", errors="replace") as f:
                text = f.read()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            continue
        except OSError as err:
            raise MlformError(f"cannot read {path}: {err}; fix its permissions") from err
        return Rules(f"{shown_as}{name}", text)
    return None


def decide(active: Active, tail: str) -> tuple[Rules, int] | None:
    """The rule excluding `tail`: the deepest ignore file with a matching line decides."""
    for rules, rel in active:
        index = rules.decide(rel, tail)
        if index is not None:
            return (rules, index) if index >= 0 else None
    return None


def parent_rules(root: Path, repo: Path) -> Active:
    """The ignore files of the folders from the repository root down to above `root`.

    A rule that would exclude `root` itself (or a folder on the way to it) is dropped:
    the folder was asked for by name, and git would otherwise hide all of it.
    """
    active: Active = ()
    chain = root.relative_to(repo).parts
    for depth, name in enumerate(chain):
        shown_as = "".join(f"{part}/" for part in chain[:depth])
        rules = read_rules(str(repo.joinpath(*chain[:depth])), None, shown_as)
        if rules is not None:
            active = ((rules, ""), *active)
        while (hit := decide(active, f"{name}/")) is not None:
            active = tuple((r.without(hit[1]) if r is hit[0] else r, rel) for r, rel in active)
        active = tuple((r, f"{rel}{name}/") for r, rel in active)
    return active
