"""The ``--json`` document of a plan (secrets masked and scrubbed; unknowns ``"[unknown]"``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sarkops.plan.findings import findings
from sarkops.plan.render.common import counts, ordered_violations, scrubber, stable, urn_type_name, warnings

if TYPE_CHECKING:
    from sarkops.plan.planner import PlanResult


def _resources(result: PlanResult) -> list[dict[str, Any]]:
    from sarkops.plan.runtime import masked

    changes = {c.urn: c for c in result.changes}
    existing = set(result.prior.resources) if result.prior is not None else set()
    entries = []
    for r in result.recording.resources:
        change = changes.get(r.urn)
        # Components have no provider: they exist or they are new.
        op = change.op if change else ("same" if r.urn in existing else "create")
        entry: dict[str, Any] = {
            "urn": r.urn, "type": r.type, "name": r.name, "parent": r.parent, "dependencies": list(r.dependencies),
            "protect": r.protect, "inputs": stable(masked(r.inputs)), "op": op,
            # Where the program created it, relative to the project dir (the engine's project:///<file>#<line>).
            "source": {"file": r.source.relative_to(result.project.dir), "line": r.source.line}
            if r.source is not None else None}
        if r.custom:
            entry["outputs"] = stable(masked(r.outputs))
        if change is not None and change.op in ("update", "replace"):
            entry["changedInputs"] = list(change.changed_inputs)
        if change is not None and change.op == "replace":
            entry["replaceKeys"] = list(change.replace_keys)
        entries.append(entry)
    if result.prior is not None:
        for change in result.changes:
            if change.op != "delete":
                continue
            old = result.prior.resources[change.urn]
            entries.append({"urn": old.urn, "type": old.type, "name": urn_type_name(old.urn)[1], "parent": old.parent,
                            "dependencies": list(old.dependencies), "protect": old.protect,
                            "inputs": stable(masked(old.inputs)), "op": "delete"})
    return entries


def to_json(result: PlanResult) -> dict[str, Any]:
    """The ``--json`` document."""
    from sarkops.plan.runtime import masked

    rec, report = result.recording, result.report
    scrub = scrubber(result)
    document: dict[str, Any] = {
        "project": rec.project,
        "stack": rec.stack,
        "mode": {"firstPreview": result.first_preview,
                 "state": result.prior.path if result.prior is not None else None},
        "resources": _resources(result),
        "outputs": stable(masked(rec.outputs)),
        "checkFailures": [{"urn": f.urn, "type": f.type, "property": f.property, "message": f.message}
                          for f in result.check_failures],
        "stateErrors": [{"urn": e.urn, "op": e.op, "when": e.when, "message": e.message}
                        for e in result.state_errors],
        "violations": [{
            "pack": v.pack, "policy": v.policy, "enforcementLevel": v.enforcement_level, "severity": v.severity,
            "urn": v.urn, "message": v.message,
        } for v in ordered_violations(result)],
        "notRun": [{"pack": n.pack, "policy": n.policy, "urn": n.urn, "kind": n.kind, "reason": n.reason}
                   for n in report.not_run],
        "notApplicable": [{"pack": n.pack, "policy": n.policy, "urn": n.urn, "reason": n.reason,
                           "exemption": n.exemption} for n in report.not_applicable],
        "remediations": [{
            "pack": m.pack, "policy": m.policy, "urn": m.urn,
            "changed": {k: {"before": masked(b), "after": masked(a)} for k, (b, a) in m.changed.items()},
        } for m in report.remediations],
        "exemptions": [{"pack": e.pack, "policy": e.policy, "resource": e.resource, "reason": e.reason,
                        "matches": list(e.matches)} for e in report.exemptions],
        "policyPacks": [{
            "name": pack.name, "version": pack.version, "dir": str(pack.dir),
            "policies": {name: {"enforcementLevel": entry["enforcementLevel"],
                                "severity": report.policies[pack.name][name].severity,
                                "config": stable(masked(entry["properties"]))}
                         for name, entry in sorted(report.config[pack.name].items())},
        } for pack in result.packs],
        "warnings": [scrub.text(w) for w in warnings(result)],
        # Everything above that a reviewer must look at, in one list with source positions (the text
        # report's and SARIF's model): errors, policy results, example config values, policies not run.
        "findings": [{"source": f.source, "level": f.level, "rule": f.rule, "pack": f.pack, "severity": f.severity,
                      "urn": f.urn, "message": f.message, "file": f.file, "line": f.line} for f in findings(result)],
        "summary": {**counts(result), "resources": len(rec.resources), "passed": not result.failed},
    }
    if result.baseline is not None:
        document["baseline"] = result.baseline
    return scrub.deep(document)
