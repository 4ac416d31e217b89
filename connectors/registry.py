"""Connector plugins: found through the entry point group `slm_sync.connectors`.

A plugin is a `ConnectorPlugin` object named by an entry point; the built-in ServiceNow and Jira
connectors register exactly the same way (see pyproject.toml), so a third-party package adds a
tool by declaring, in its own pyproject.toml:

    [project.entry-points."slm_sync.connectors"]
    mytool = "mytool_slm:plugin"

where `plugin = ConnectorPlugin(name="mytool", source=make_source, target=make_target,
mapping_file=Path(__file__).with_name("mapping.yaml"))` and the factories take the loaded
`config.Settings` (plugin options live under `plugins: {mytool: {...}}` in the settings file).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path

from config import ConfigError, Settings
from connectors.base import SourceConnector, TargetConnector

GROUP = "slm_sync.connectors"

SourceFactory = Callable[[Settings], SourceConnector]
TargetFactory = Callable[[Settings], TargetConnector]


@dataclass(frozen=True)
class ConnectorPlugin:
    """A tool slm-sync can read SLA data from (source) and/or write review tickets to (target)."""

    name: str
    source: SourceFactory | None = None
    target: TargetFactory | None = None
    mapping: str | None = None  # name of a shipped mapping (config/mappings/<name>.yaml)
    mapping_file: Path | None = None  # or the plugin's own mapping file


def available() -> dict[str, ConnectorPlugin]:
    """Every installed connector plugin, by name."""
    found: dict[str, ConnectorPlugin] = {}
    for entry in entry_points(group=GROUP):
        plugin = entry.load()
        if not isinstance(plugin, ConnectorPlugin):
            raise ConfigError(
                f"entry point {entry.name!r} ({entry.value}) in group {GROUP} is not a "
                "ConnectorPlugin",
                hint="the plugin package must expose a connectors.registry.ConnectorPlugin",
            )
        found[entry.name] = plugin
    return found


def plugin(name: str) -> ConnectorPlugin:
    """The plugin called `name`, or a ConfigError listing the installed ones."""
    plugins = available()
    if name not in plugins:
        raise ConfigError(
            f"no connector named {name!r} is installed (installed: {', '.join(sorted(plugins))})",
            hint="check sync.source / sync.target, or install the plugin package",
        )
    return plugins[name]


def make_source(settings: Settings) -> SourceConnector:
    """The configured source connector."""
    chosen = plugin(settings.sync.source)
    if chosen.source is None:
        raise ConfigError(f"connector {chosen.name!r} cannot be a source (sync.source)")
    return chosen.source(settings)


def make_target(settings: Settings) -> TargetConnector:
    """The configured target connector."""
    chosen = plugin(settings.sync.target)
    if chosen.target is None:
        raise ConfigError(f"connector {chosen.name!r} cannot be a target (sync.target)")
    return chosen.target(settings)
