"""Source positions: every recorded resource carries the program line that created it."""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pulumi
import pulumi_aws as aws

from sarkops.plan import PlanResult
from sarkops.plan.render.jsondoc import to_json
from sarkops.plan.runtime import run_program
from sarkops.plan.source import from_stack_trace
from tests.conftest import record_program

ROOT = Path(__file__).resolve().parents[3]


@cache
def _calls_by_line(path: Path) -> dict[int, list[ast.Call]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    calls: dict[int, list[ast.Call]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            calls.setdefault(node.lineno, []).append(node)
    return calls


def _callee(call: ast.Call) -> str:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""


def test_every_production_resource_is_located_at_the_call_that_creates_it(production_preview: PlanResult) -> None:
    resources = production_preview.recording.resources
    assert len(resources) > 200
    indirect = []
    for resource in resources:
        assert resource.source is not None, resource.urn
        path = Path(resource.source.file)
        assert path.is_relative_to(ROOT), resource.source
        assert ".venv" not in path.parts, resource.source
        # A constructor call starts on that line: of the resource's class, or of a class chosen by the
        # function it is in (security_groups.py's `kind(...)`, a parameter typed with both rule classes).
        calls = _calls_by_line(path).get(resource.source.line, [])
        assert calls, f"{resource.urn}: no call at {path.name}:{resource.source.line}"
        class_name = resource.type.rsplit(":", 1)[-1]
        if not any(_callee(c) == class_name for c in calls):
            indirect.append((path.name, resource.source.line, class_name))
    assert {(f, line) for f, line, _ in indirect} <= {("security_groups.py", 159)}, indirect
    assert {cls for _, _, cls in indirect} <= {"SecurityGroupIngressRule", "SecurityGroupEgressRule"}


def test_components_point_at_the_program_and_children_at_the_component(production_preview: PlanResult) -> None:
    rec = production_preview.recording
    database = rec.one("sark:database:Database")
    instance = rec.one("aws:rds/instance:Instance")
    assert database.source is not None
    assert instance.source is not None
    assert database.source.relative_to(production_preview.project.dir) == "__main__.py"
    main_lines = (ROOT / "__main__.py").read_text(encoding="utf-8").splitlines()
    assert main_lines[database.source.line - 1].startswith("database = Database(")
    assert instance.source.relative_to(production_preview.project.dir) == "components/database.py"


def test_json_has_the_position_relative_to_the_project(production_preview: PlanResult) -> None:
    document = to_json(production_preview)
    by_name = {r["name"]: r for r in document["resources"]}
    instance = production_preview.recording.one("aws:rds/instance:Instance")
    assert instance.source is not None
    assert by_name[instance.name]["source"] == {"file": "components/database.py", "line": instance.source.line}


def _helper_bucket(name: str) -> aws.s3.Bucket:
    return aws.s3.Bucket(name)


def test_a_callable_program_is_located_at_its_own_lines() -> None:
    rec = record_program(lambda: _helper_bucket("assets"))
    bucket = rec.one("aws:s3/bucket:Bucket")
    assert bucket.source is not None
    assert Path(bucket.source.file) == Path(__file__).resolve()
    assert bucket.source.line == _helper_bucket.__code__.co_firstlineno + 1


def test_only_frames_under_the_project_count(tmp_path: Path) -> None:
    project = tmp_path / "proj"
    project.mkdir()
    (project / "Pulumi.yaml").write_text("name: proj\nruntime: python\n")
    (project / "__main__.py").write_text("import pulumi_aws as aws\n\n\naws.s3.Bucket('b')\n")
    rec = run_program(project, project="proj", stack="dev", config={"aws:region": "us-east-1"})
    bucket = rec.one("aws:s3/bucket:Bucket")
    assert bucket.source is not None
    assert (bucket.source.relative_to(project), bucket.source.line) == ("__main__.py", 4)


def test_a_trace_with_only_library_frames_has_no_position() -> None:
    from pulumi.runtime.proto import source_pb2

    library = Path(pulumi.__file__).as_uri()
    trace = source_pb2.StackTrace(frames=[source_pb2.StackFrame(pc=source_pb2.SourcePosition(uri=library, line=3))])
    assert from_stack_trace(trace) is None
    here = Path(__file__).resolve()
    trace.frames.append(source_pb2.StackFrame(pc=source_pb2.SourcePosition(uri=here.as_uri(), line=7)))
    position = from_stack_trace(trace)
    assert position is not None
    assert (position.file, position.line) == (str(here), 7)
    assert from_stack_trace(trace, root=here.parent / "elsewhere") is None
