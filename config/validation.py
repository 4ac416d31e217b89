"""Checks of setting values that their types cannot express, and URLs shown without passwords.

    web_url(value)            an http(s) URL with a host, or ValueError saying what is wrong
    instance_name(value)      a ServiceNow instance name ('acme'), not a host or a URL
    state_url(value)          a database URL the state store can open (SQLite file, psycopg);
                              postgresql:// becomes postgresql+psycopg:// (the driver we ship)
    directory_problem(path)   why `path` can be neither used nor created as a directory
    redact_url(text)          `text` with every URL password (user info, password=) masked
    url_passwords(url)        the passwords inside a database URL, for the log redactor

The ValueErrors become ConfigErrors in `config.loader`, which adds the file and line or the
environment variable the value came from. No message here contains a password.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

MASK = "***"
WEB_SCHEMES = ("http", "https")
# (dialect, driver) pairs the state store works with, given the installed dependencies
# (pysqlite ships with Python; psycopg is a dependency, psycopg2 and others are not).
STATE_DRIVERS = {("sqlite", "pysqlite"), ("postgresql", "psycopg")}
STATE_URL_EXAMPLES = "sqlite:///path/to/state.db or postgresql+psycopg://user@host/db"
_INSTANCE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
# Greedy to the last '@' of the URL: a password may itself hold '@' or '/'; masking a bit of
# host too is better than showing a bit of password.
_USERINFO_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^\s:/@]*:)\S*@")
_QUERY_PASSWORD = re.compile(r"(?i)([?&](?:ssl)?password=)[^&#\s]*")


def redact_url(text: str) -> str:
    """`text` with the password of every URL in it replaced by ***; the rest stays readable."""
    masked = _USERINFO_PASSWORD.sub(lambda m: f"{m.group(1)}{MASK}@", text)
    return _QUERY_PASSWORD.sub(lambda m: f"{m.group(1)}{MASK}", masked)


def web_url(value: str) -> str:
    """`value` if it is an http(s) URL with a host; else a ValueError that says what is wrong."""
    shown = repr(redact_url(value))
    if not value.strip() or any(c.isspace() for c in value.strip()):
        raise ValueError(f"{shown} is not a URL; expected e.g. https://acme.atlassian.net")
    parts = urlsplit(value.strip())
    if parts.scheme.lower() not in WEB_SCHEMES:
        raise ValueError(
            f"{shown} is not an http(s) URL; write it with its scheme, e.g. https://{value.strip()}"
            if not parts.scheme
            else f"{shown} has scheme {parts.scheme!r}; only http and https are supported"
        )
    try:
        host, _port = parts.hostname, parts.port
    except ValueError:
        raise ValueError(f"{shown} has an invalid port") from None
    if not host:
        raise ValueError(f"{shown} has no host name; expected e.g. https://acme.atlassian.net")
    if parts.username is not None or parts.password is not None:
        raise ValueError(
            f"{shown} carries a user name or password; give the URL alone and the credentials "
            "in their own settings (secret files or environment)"
        )
    return value.strip()


def instance_name(value: str) -> str:
    """`value` if it is a ServiceNow instance name: 'acme' for https://acme.service-now.com."""
    name = value.strip()
    if not _INSTANCE.match(name):
        raise ValueError(
            f"{redact_url(value)!r} is not an instance name: give the name alone ('acme' for "
            "https://acme.service-now.com), or the full address as servicenow.url"
        )
    return name


def state_url(value: str) -> str:
    """`value` if the state store can open it: a SQLite file, or PostgreSQL through psycopg.

    A bare `postgresql://` gets the psycopg driver: SQLAlchemy before 2.1 would pick psycopg2,
    which is not installed.
    """
    value = value.strip()
    if value.lower().startswith("postgresql://"):
        value = "postgresql+psycopg://" + value[len("postgresql://") :]
    shown = repr(redact_url(value))
    try:
        url = make_url(value)
        dialect = url.get_dialect()
    except NoSuchModuleError:  # parsed, but no such dialect (a subclass of ArgumentError)
        raise ValueError(
            f"{shown}: unknown database {url.drivername!r}; supported: {STATE_URL_EXAMPLES}"
        ) from None
    except ArgumentError:
        raise ValueError(f"{shown} is not a database URL; expected {STATE_URL_EXAMPLES}") from None
    if (dialect.name, dialect.driver) not in STATE_DRIVERS:
        raise ValueError(
            f"{shown}: database {dialect.name!r} with driver {dialect.driver!r} is not "
            f"supported; use {STATE_URL_EXAMPLES}"
        )
    if dialect.name == "sqlite" and url.database in (None, "", ":memory:"):
        raise ValueError(
            f"{shown} is an in-memory database, lost at every exit (and with it the ledger "
            "that prevents duplicate tickets); give a file, or leave sync.state_url unset"
        )
    return value


def sqlite_file(value: str) -> Path | None:
    """The database file of a SQLite URL, None for other databases."""
    url = make_url(value)
    return Path(url.database) if url.get_backend_name() == "sqlite" and url.database else None


def url_passwords(value: str) -> list[str]:
    """Passwords inside a database URL (user info, password= in the query)."""
    try:
        url: URL = make_url(value)
    except ArgumentError:
        return []
    found = [url.password] if url.password else []
    for key in ("password", "sslpassword"):
        query = url.query.get(key)
        found += [query] if isinstance(query, str) else list(query or ())
    return [str(p) for p in found if p]


def directory_problem(path: Path) -> str | None:
    """Why `path` can neither serve as a directory nor be created as one; None when it can."""
    try:
        if path.is_symlink() and not path.exists():
            return f"{path} is a broken symbolic link"
        if path.exists():
            return None if path.is_dir() else f"{path} exists and is not a directory"
        for parent in path.parents:
            if parent.exists():
                return None if parent.is_dir() else f"{path} cannot be created: {parent} is a file"
    except OSError as error:
        return f"{path} cannot be checked: {error.strerror or error}"
    return None
