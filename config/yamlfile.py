"""Reading admin-edited YAML with the line of every key, so errors can name file and line."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from config.errors import ConfigError

KeyPath = tuple[str | int, ...]


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


def load_yaml(path: Path) -> YamlDocument:
    """Parse `path`; a syntax error becomes a ConfigError naming the file and line."""
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
    if node is not None:
        _index(node, (), lines)
    return YamlDocument(path=path, data={} if data is None else data, lines=lines)


def _index(node: yaml.Node, prefix: KeyPath, lines: dict[KeyPath, int]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key: str | int = key_node.value
            lines[(*prefix, key)] = key_node.start_mark.line + 1
            _index(value_node, (*prefix, key), lines)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines[(*prefix, i)] = item.start_mark.line + 1
            _index(item, (*prefix, i), lines)
