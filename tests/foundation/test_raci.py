"""The RACI matrix: the seed's table loads exactly, and a broken matrix is rejected precisely."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from config import ConfigError, load_raci
from review import Letter, RaciMatrix, Role, Scope

SEED_TABLE = {
    # activity: (SLM PO, Catalog Owner, LT, Service Level Mgr, CI Owner, scope)
    "Select services for conducting service review sessions": ("A/C", "I", "R", "I", "I", "cycle"),
    "Schedule service review with service owner and important stakeholders": (
        "R", "", "A/C", "C", "C", "service",
    ),
    "Prepare service review artifacts": ("A/R", "", "", "C", "C", "service"),
    "Participate in service review": ("A/R", "C", "I", "R", "R", "service"),
    "Propose service improvement recommendations as appropriate": (
        "A", "", "I", "R", "C", "service",
    ),
    "Facilitate lessons learned regarding this process": ("A/R", "C", "C", "C", "C", "cycle"),
    "Update process policies with approved changes": ("A/R", "I", "I", "I", "I", "cycle"),
}  # fmt: skip
COLUMNS = [
    Role.SLM_PROCESS_OWNER,
    Role.SERVICE_CATALOG_OWNER,
    Role.LT,
    Role.SERVICE_LEVEL_MANAGER,
    Role.CI_OWNER,
]


def _letters(cell: str) -> frozenset[Letter]:
    return frozenset(Letter(p) for p in cell.split("/")) if cell else frozenset()


def test_shipped_matrix_equals_the_seed_table_cell_by_cell() -> None:
    """Every activity of the seed, in its order, with every role's letters and its scope."""
    matrix = load_raci()
    assert [a.name for a in matrix.activities] == list(SEED_TABLE)
    for activity in matrix.activities:
        *cells, scope = SEED_TABLE[activity.name]
        assert activity.scope is Scope(scope), activity.name
        for role, cell in zip(COLUMNS, cells, strict=True):
            assert activity.letters(role) == _letters(cell), (activity.name, role)


def test_matrix_answers_who_is_accountable_and_responsible() -> None:
    """Participate in service review: A = process owner; R = PO, service owner and CI owners."""
    participate = load_raci().activity("participate_review")
    assert participate.accountable is Role.SLM_PROCESS_OWNER
    assert participate.roles_with(Letter.R) == (
        Role.SLM_PROCESS_OWNER,
        Role.SERVICE_LEVEL_MANAGER,
        Role.CI_OWNER,
    )


def _seed_data(project_root: Path) -> dict[str, object]:
    data = yaml.safe_load((project_root / "config" / "raci.yaml").read_text())
    assert isinstance(data, dict)
    return data


BROKEN = [
    ("two_a", lambda a: a["raci"].update(lt="A"), "needs exactly one A"),
    ("no_a", lambda a: a["raci"].update(slm_process_owner="C"), "needs exactly one A"),
    ("no_r", lambda a: a["raci"].update(lt="C"), "needs at least one R"),
    ("unknown_role", lambda a: a["raci"].update(cab_chair="I"), "unknown role 'cab_chair'"),
    ("bad_letter", lambda a: a["raci"].update(lt="X"), "use R, A, C, I"),
    ("repeated_letter", lambda a: a["raci"].update(lt="R/R"), "use R, A, C, I"),
    ("bad_scope", lambda a: a.update(scope="quarter"), "scope 'quarter' is not one of"),
    ("bad_offset", lambda a: a.update(due_offset_days="soon"), "due_offset_days must be"),
    ("unknown_key", lambda a: a.update(owner="x"), "unknown key 'owner'"),
]


@pytest.mark.parametrize(("case", "breaks", "rule"), BROKEN, ids=[b[0] for b in BROKEN])
def test_each_rule_rejects_a_broken_matrix_naming_the_activity(
    project_root: Path, tmp_path: Path, case: str, breaks: object, rule: str
) -> None:
    """A broken matrix fails to load; the message names the file line, the activity and the rule."""
    data = _seed_data(project_root)
    activities = data["activities"]
    assert isinstance(activities, list)
    breaks(activities[0])  # type: ignore[operator]
    path = tmp_path / "raci.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(ConfigError) as caught:
        load_raci(path)
    message = caught.value.message
    assert rule in message
    assert "Select services for conducting service review sessions" in message
    assert message.startswith(f"{path}:")


def test_duplicate_activity_ids_are_rejected(project_root: Path, tmp_path: Path) -> None:
    """Two activities with one id: the second is named, with the rule."""
    data = _seed_data(project_root)
    activities = data["activities"]
    assert isinstance(activities, list)
    activities[1]["id"] = activities[0]["id"]
    path = tmp_path / "raci.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(ConfigError, match="ids must be unique") as caught:
        load_raci(path)
    assert "Schedule service review" in caught.value.message


def test_a_role_left_empty_means_no_letters() -> None:
    """'-' or an empty cell is the seed's blank: the role has no part in the activity."""
    matrix = RaciMatrix.from_data(
        {
            "activities": [
                {
                    "id": "x",
                    "name": "X",
                    "scope": "cycle",
                    "raci": {"lt": "A/R", "ci_owner": "-", "service_catalog_owner": ""},
                }
            ]
        }
    )
    assert matrix.activity("x").letters(Role.CI_OWNER) == frozenset()
