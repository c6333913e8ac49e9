"""docs/checklist.md, the checklist's traceability table, stays true to the code.

Every policy, verify item, config key, component and test the table names exists; every checklist
anchor a policy or a verify item cites has a row, and that row names the policy or item. When
policies or verify items are added or renamed, the failures say which row to change and how.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

from sark_policies import POLICIES
from sarkops.verify.items import ITEMS

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "checklist.md"
OWNED_HEADER = ["Anchor", "Checklist item", "Config keys", "Component", "Policies", "Verify items", "Tests"]
NOT_OWNED_HEADER = ["Anchor", "Checklist item", "Owner", "Why not here"]
ANCHOR = re.compile(r"(Pre-Deployment|Deployment|Post-Deployment) \d+(\.\d+)?|Rollback \d+|Emergency contacts|Appendix")
"""Section names of the production deployment checklist, as the policies' anchors spell them."""


@dataclass(frozen=True)
class Row:
    line: int
    cells: dict[str, str]

    def names(self, column: str) -> list[str]:
        """The `backticked` names in one cell."""
        return re.findall(r"`([^`]+)`", self.cells[column])

    def __str__(self) -> str:
        return f"docs/checklist.md:{self.line} ({self.cells['Anchor']}: {self.cells['Checklist item'][:60]})"


def _split(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


@cache
def tables() -> dict[tuple[str, ...], list[Row]]:
    """Each Markdown table of the page by its header: its rows."""
    found: dict[tuple[str, ...], list[Row]] = {}
    header: list[str] | None = None
    for number, line in enumerate(DOC.read_text().splitlines(), start=1):
        if not line.startswith("|"):
            header = None
        elif header is None:
            header = _split(line)
            found[tuple(header)] = []
        elif not set(line) <= set("|-: "):
            cells = _split(line)
            assert len(cells) == len(header), f"docs/checklist.md:{number}: {len(cells)} cells, header {len(header)}"
            found[tuple(header)].append(Row(number, dict(zip(header, cells, strict=True))))
    return found


def owned() -> list[Row]:
    rows = tables().get(tuple(OWNED_HEADER))
    assert rows, f"docs/checklist.md has no table with the header | {' | '.join(OWNED_HEADER)} |"
    return rows


def not_owned() -> list[Row]:
    rows = tables().get(tuple(NOT_OWNED_HEADER))
    assert rows, f"docs/checklist.md has no table with the header | {' | '.join(NOT_OWNED_HEADER)} |"
    return rows


def anchor_of(citation: str) -> str:
    """``Pre-Deployment 1.2 (daily backups, 30 days)`` -> ``Pre-Deployment 1.2``."""
    return citation.split(" (", 1)[0].strip()


def policy_anchors() -> Iterator[tuple[str, str]]:
    """(policy name, checklist anchor) for every checklist anchor of every policy of the pack."""
    for policy in POLICIES:
        for tag in policy.tags or ():
            if tag.startswith("checklist:"):
                yield policy.name, anchor_of(tag.removeprefix("checklist:"))


def verify_anchors() -> Iterator[tuple[str, str]]:
    """(verify item id, checklist anchor) for every section a verify item cites."""
    for item in ITEMS:
        for citation in item.checklist.split(","):
            yield item.id, anchor_of(citation)


def test_the_page_has_both_tables_and_well_formed_anchors() -> None:
    assert len(owned()) >= 30
    assert len(not_owned()) >= 10
    bad = [f"{row}: {row.cells['Anchor']!r}" for row in owned() + not_owned()
           if not ANCHOR.fullmatch(row.cells["Anchor"])]
    assert bad == [], "anchors are checklist sections such as 'Pre-Deployment 3.1' or 'Rollback 2':\n" + "\n".join(bad)
    for row in not_owned():
        assert row.cells["Owner"], f"{row}: says nobody owns it"


def test_every_policy_named_is_in_the_pack() -> None:
    pack = {policy.name for policy in POLICIES}
    unknown = [f"{row}: `{name}`" for row in owned() for name in row.names("Policies") if name not in pack]
    assert unknown == [], ("docs/checklist.md names policies the pack does not have (renamed or removed? use the "
                           "name from policies/README.md):\n" + "\n".join(unknown))


def test_every_verify_item_named_exists() -> None:
    ids = {item.id for item in ITEMS}
    unknown = [f"{row}: `{name}`" for row in owned() for name in row.names("Verify items") if name not in ids]
    assert unknown == [], ("docs/checklist.md names verify items sarkops/verify/items.py does not have:\n"
                           + "\n".join(unknown))


def test_every_config_key_named_is_declared() -> None:
    declared = set(yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"])
    unknown = [f"{row}: `{name}`" for row in owned() for name in row.names("Config keys") if name not in declared]
    assert unknown == [], "docs/checklist.md names config keys Pulumi.yaml does not declare:\n" + "\n".join(unknown)


@cache
def _functions(path: Path) -> frozenset[str]:
    """Names of the functions a Python file defines (parsed once: the table cites big test files many times)."""
    tree = ast.parse(path.read_text())
    return frozenset(node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef))


def test_every_component_and_test_named_exists() -> None:
    missing = []
    for row in owned():
        for name in row.names("Component") + row.names("Tests"):
            path, _, function = name.partition("::")
            if not (ROOT / path).exists():
                missing.append(f"{row}: `{name}`: no file {path}")
            elif function and function not in _functions(ROOT / path):
                missing.append(f"{row}: `{name}`: {path} defines no {function}")
    assert missing == [], "docs/checklist.md names what does not exist:\n" + "\n".join(missing)


def test_every_owned_row_is_implemented_and_proved() -> None:
    empty = [str(row) for row in owned() if not row.names("Component") or not row.names("Tests")]
    assert empty == [], "rows infrastructure owns need the code that implements them and a test:\n" + "\n".join(empty)


def _unlisted(citations: Iterator[tuple[str, str]], column: str) -> list[str]:
    rows_by_anchor: dict[str, list[Row]] = {}
    for row in owned():
        rows_by_anchor.setdefault(row.cells["Anchor"], []).append(row)
    problems = []
    for name, anchor in sorted(set(citations)):
        rows = rows_by_anchor.get(anchor)
        if not rows:
            problems.append(f"`{name}` cites checklist {anchor!r}, which has no row in the first table of "
                            f"docs/checklist.md: add a row with Anchor '{anchor}' naming `{name}` in {column}")
        elif not any(name in row.names(column) for row in rows):
            lines = ", ".join(str(row.line) for row in rows)
            problems.append(f"`{name}` cites checklist {anchor!r}, but no {anchor} row (docs/checklist.md lines "
                            f"{lines}) names it: add `{name}` to the {column} column of the row it implements")
    return problems


def test_every_checklist_anchor_of_a_policy_has_a_row_naming_it() -> None:
    problems = _unlisted(policy_anchors(), "Policies")
    assert problems == [], "\n".join(problems)


def test_every_checklist_anchor_of_a_verify_item_has_a_row_naming_it() -> None:
    problems = _unlisted(verify_anchors(), "Verify items")
    assert problems == [], "\n".join(problems)


def test_the_consistency_checks_catch_a_stale_row() -> None:
    """The anchor check is not vacuous: a policy citing a section the table lacks is reported with the fix."""
    problems = _unlisted(iter([("aws-example-new-rule", "Post-Deployment 9"),
                               ("aws-rds-instance-enable-multi-az", "Pre-Deployment 3.3")]), "Policies")
    assert problems[0].startswith("`aws-example-new-rule` cites checklist 'Post-Deployment 9', which has no row")
    assert "add `aws-rds-instance-enable-multi-az` to the Policies column" in problems[1]


def test_docs_link_the_checklist_inside_the_repository() -> None:
    """A clone has no ../shared: the README and the guides link docs/checklist.md."""
    pages = [ROOT / "README.md", ROOT / "policies" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    outside = [f"{page.relative_to(ROOT)}:{number}" for page in pages
               for number, line in enumerate(page.read_text().splitlines(), start=1) if "](../shared" in line]
    assert outside == [], "links to ../shared (not in a clone); link docs/checklist.md instead: " + ", ".join(outside)
    assert "(docs/checklist.md)" in (ROOT / "README.md").read_text()
