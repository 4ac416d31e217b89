"""Reading admin-edited YAML with the line of every key, so errors can name file and line.

Every YAML file slm-sync reads (settings, `raci.yaml`, mappings) goes through `load_yaml`. A key
repeated in one mapping is an error: YAML would keep the last one and silently drop the first,
so a second `sync:` section would replace the whole first one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from config.errors import ConfigError

KeyPath = tuple[str | int, ...]
MERGE_TAG = "tag:yaml.org,2002:merge"  # `<<: *anchor` may repeat; it merges, it does not set


@dataclass(frozen=True)
class YamlDocument:
    """A parsed YAML file: its data, and the 1-based line where each key path starts."""

    path: Path
    data: Any
    lines: dict[KeyPath, int] = field(default_factory=dict)

    def line_of(self, key_path: KeyPath) -> int | None:
        """The line of `key_path`, or of its nearest parent that the file has."""
        probe = tuple(key_path)
        while probe:
            if probe in self.lines:
                return self.lines[probe]
            probe = probe[:-1]
        return None

    def where(self, key_path: KeyPath) -> str:
        """`file:line` for messages."""
        line = self.line_of(key_path)
        return f"{self.path}:{line}" if line else str(self.path)


@dataclass(frozen=True)
class DuplicateKey:
    """A key set twice in the same mapping: where first, where again."""

    key_path: KeyPath
    first_line: int
    again_line: int


def dotted(key_path: KeyPath) -> str:
    """`review.roles.lt_members[0].email` for a key path."""
    text = ""
    for part in key_path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def load_yaml(path: Path) -> YamlDocument:
    """Parse `path`; a syntax error or a repeated key becomes a ConfigError naming file and line."""
    try:
        source = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: file not found", hint="check the path given with --config"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read ({exc})") from None
    try:
        node = yaml.compose(source, Loader=yaml.SafeLoader)
        data = yaml.safe_load(source)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = exc.problem or "invalid YAML"
        raise ConfigError(
            f"{where}: invalid YAML: {problem}",
            hint="check indentation, colons and quotes on that line or the one above",
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from None
    lines: dict[KeyPath, int] = {}
    duplicates: list[DuplicateKey] = []
    if node is not None:
        _index(node, (), lines, duplicates)
    if duplicates:
        raise _duplicate_error(path, duplicates)
    return YamlDocument(path=path, data={} if data is None else data, lines=lines)


def _index(
    node: yaml.Node, prefix: KeyPath, lines: dict[KeyPath, int], duplicates: list[DuplicateKey]
) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: dict[str | int, int] = {}  # this mapping's own keys only
        for key_node, value_node in node.value:
            key: str | int = key_node.value
            line = key_node.start_mark.line + 1
            if key in seen and key_node.tag != MERGE_TAG:
                duplicates.append(DuplicateKey((*prefix, key), seen[key], line))
            seen[key] = lines[(*prefix, key)] = line
            _index(value_node, (*prefix, key), lines, duplicates)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines[(*prefix, i)] = item.start_mark.line + 1
            _index(item, (*prefix, i), lines, duplicates)


def _duplicate_error(path: Path, duplicates: list[DuplicateKey]) -> ConfigError:
    problems = [
        f"{path}:{d.again_line}: duplicate key {dotted(d.key_path)!r}, already set at line "
        f"{d.first_line} (YAML would keep only the one at line {d.again_line})"
        for d in duplicates
    ]
    return ConfigError(
        "\n".join(problems),
        hint="keep one of each key: merge the two sections (or entries) into one",
    )
