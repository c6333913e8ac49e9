"""``--sarif FILE``: the plan's findings as SARIF 2.1.0, for GitHub code scanning.

One rule per policy of the packs (``id`` = the policy name, ``help`` = its remediation steps,
``properties.tags`` = its anchors as the policy declares them, e.g. ``checklist:Pre-Deployment 1.2``,
``checkov:CKV_AWS_17``, ``awsguard:rds-instance-public-access``; plus ``security`` so that code
scanning files the results as security alerts, and ``security-severity`` from the policy's
severity); plus three rules of sarkops itself for the findings that are not policy results:
:data:`CHECK_RULE` (the provider refuses an input), :data:`STATE_RULE` (replacing or deleting a
protected resource) and :data:`CONFIG_RULE` (an example value in the stack's config).

One result per finding (:mod:`sarkops.plan.findings`): ``error`` for mandatory violations,
check failures and deployment errors, ``warning`` for advisory ones (and example config
values), ``note`` for remediations; a policy that could not run during the preview is a result
of ``kind: open`` (SARIF: "the tool could not determine whether the result is pass or fail",
which requires level ``none``). Each result is located at the program line that created the
resource (:mod:`sarkops.plan.source`) as a path relative to the repository root under
``uriBaseId: %SRCROOT%``, with the resource's URN as a logical location. A finding with no
resource (a stack policy) is located at the program's main file.

Format: OASIS SARIF 2.1.0 errata 01 (https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/);
what GitHub reads of it: https://docs.github.com/en/code-security/code-scanning/integrating-with-code-scanning/sarif-support-for-code-scanning.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sarkops.errors import SarkopsError
from sarkops.plan.findings import Finding, findings
from sarkops.plan.render.common import scrubber, urn_type_name

if TYPE_CHECKING:
    from sarkops.plan.planner import PlanResult

SCHEMA_URI = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
SRCROOT = "%SRCROOT%"

CHECK_RULE = "sarkops-provider-check"
STATE_RULE = "sarkops-protected-resource"
CONFIG_RULE = "sarkops-config-placeholder"

_OWN_RULES: dict[str, dict[str, Any]] = {
    CHECK_RULE: {
        "description": "The AWS provider's Check refuses an input (a name over an AWS limit and the like): "
                       "a real `pulumi preview` fails.",
        "help": "Change the input the message names so the provider accepts it (for names: an explicit name "
                "within the limit). `sarkops plan` shows the property and the limit.",
        "level": "error", "severity": "high",
    },
    STATE_RULE: {
        "description": "The update would replace or delete a protected resource: `pulumi up` fails.",
        "help": "Keep the inputs that force a replacement unchanged (the message names them), or unprotect "
                "the resource deliberately in a change of its own.",
        "level": "error", "severity": "high",
    },
    CONFIG_RULE: {
        "description": "An example value in the stack's config: set before `pulumi up` (the program refuses an "
                       "update while any is left).",
        "help": "Set the key to the real value: `pulumi config set <key> <value> --stack <stack>`.",
        "level": "warning", "severity": "",
    },
}

_LEVELS = {"error": "error", "mandatory": "error", "advisory": "warning", "remediate": "note", "disabled": "none"}
_SECURITY_SEVERITY = {"critical": "9.5", "high": "8.0", "medium": "5.5", "low": "3.0"}


def repository_root(start: Path) -> Path:
    """The nearest directory at or above ``start`` holding ``.git`` (a dir, or a file in a worktree); else ``start``."""
    start = start.resolve()
    for directory in (start, *start.parents):
        if (directory / ".git").exists():
            return directory
    return start


def _rule_id(finding: Finding) -> str:
    if finding.source == "check":
        return CHECK_RULE
    if finding.source == "state":
        return STATE_RULE
    if finding.source == "config":
        return CONFIG_RULE
    return finding.rule


def _properties(tags: list[str], severity: str) -> dict[str, Any]:
    properties: dict[str, Any] = {"tags": ["security", *tags]}
    if severity in _SECURITY_SEVERITY:
        properties["security-severity"] = _SECURITY_SEVERITY[severity]
    return properties


def _rules(result: PlanResult) -> list[dict[str, Any]]:
    rules = []
    for pack in result.packs:
        infos = result.report.policies.get(pack.name, {})
        levels = result.report.config.get(pack.name, {})
        declared = {getattr(p, "name", ""): p for p in pack.policies}
        for name, info in sorted(infos.items()):
            policy = declared.get(name)
            tags = list(getattr(policy, "tags", None) or [])
            level = str(levels.get(name, {}).get("enforcementLevel", info.enforcement_level))
            steps = info.remediation_steps or "See the policy's description."
            rule: dict[str, Any] = {
                "id": name,
                "shortDescription": {"text": info.description.splitlines()[0] if info.description else name},
                "fullDescription": {"text": info.description or name},
                "help": {"text": steps, "markdown": f"**Remediation**: {steps}\n\nAnchors: "
                                                   + (", ".join(f"`{t}`" for t in tags) or "none")},
                "defaultConfiguration": {"level": _LEVELS.get(level, "warning"), "enabled": level != "disabled"},
                "properties": {**_properties(tags, info.severity), "pack": f"{pack.name}@{pack.version}",
                               "enforcementLevel": level},
            }
            url = getattr(policy, "url", None)
            if url:
                rule["helpUri"] = url
            rules.append(rule)
    for rule_id, own in _OWN_RULES.items():
        rules.append({
            "id": rule_id,
            "shortDescription": {"text": own["description"]},
            "fullDescription": {"text": own["description"]},
            "help": {"text": own["help"], "markdown": own["help"]},
            "defaultConfiguration": {"level": own["level"]},
            "properties": _properties([], own["severity"]),
        })
    return rules


def _location(finding: Finding, result: PlanResult, root: Path) -> dict[str, Any]:
    project = result.project.dir.resolve()
    if finding.file:
        path, line = project / finding.file, finding.line or 1
    else:
        path, line = result.project.main, 1
    physical = {
        "artifactLocation": {"uri": Path(os.path.relpath(Path(path).resolve(), root)).as_posix(), "uriBaseId": SRCROOT},
        "region": {"startLine": line},
    }
    location: dict[str, Any] = {"physicalLocation": physical}
    if finding.urn:
        type_, name = urn_type_name(finding.urn)
        location["logicalLocations"] = [{"fullyQualifiedName": finding.urn, "name": name, "kind": "resource",
                                         "decoratedName": f"{type_} {name}"}]
    return location


def to_sarif(result: PlanResult, *, version: str = "") -> dict[str, Any]:
    """The SARIF log of ``result`` (secrets scrubbed from every message)."""
    from sarkops.plan.render.common import counts

    scrub = scrubber(result)
    root = repository_root(result.project.dir)
    rules = _rules(result)
    index = {rule["id"]: i for i, rule in enumerate(rules)}
    results = []
    for finding in findings(result):
        if finding.level == "disabled":
            continue
        rule_id = _rule_id(finding)
        if rule_id not in index:  # a policy the packs did not describe (should not happen): still reported
            index[rule_id] = len(rules)
            rules.append({"id": rule_id, "shortDescription": {"text": rule_id}})
        message = scrub.text(finding.message)
        entry: dict[str, Any] = {
            "ruleId": rule_id,
            "ruleIndex": index[rule_id],
            "message": {"text": message},
            "locations": [_location(finding, result, root)],
            # Stable across runs and line moves: code scanning matches alerts by these.
            "partialFingerprints": {"sarkopsFinding/v1": hashlib.sha256(
                "\0".join((rule_id, finding.urn, finding.rule, message)).encode()).hexdigest()[:32]},
            "properties": {"source": finding.source, "level": finding.level,
                           **({"pack": finding.pack} if finding.pack else {}),
                           **({"severity": finding.severity} if finding.severity else {}),
                           **({"configKey": finding.rule} if finding.source == "config" else {})},
        }
        if finding.source == "not-run":
            entry |= {"kind": "open", "level": "none"}
        else:
            entry |= {"kind": "fail", "level": _LEVELS.get(finding.level, "warning")}
        results.append(entry)
    return {
        "$schema": SCHEMA_URI,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "sarkops plan",
                "fullName": "sarkops plan (offline Pulumi preview with the CrossGuard policy packs)",
                **({"version": version} if version else {}),
                "rules": rules,
            }},
            "automationDetails": {"id": f"sarkops-plan/{result.stack}/"},
            "invocations": [{"executionSuccessful": True, "exitCode": 1 if result.failed else 0}],
            "results": results,
            "properties": {"project": result.recording.project, "stack": result.stack,
                           "summary": {**counts(result), "passed": not result.failed}},
        }],
    }


class SarifWriteError(SarkopsError):
    """The ``--sarif`` file cannot be written."""


def write_sarif(result: PlanResult, path: Path) -> None:
    """Write :func:`to_sarif` of ``result`` to ``path``."""
    from sarkops.__main__ import version

    document = to_sarif(result, version=version())
    try:
        path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    except OSError as error:
        raise SarifWriteError(f"--sarif {path}: cannot write: {error.strerror}") from None
