"""``sarkops plan``: offline ``pulumi preview`` of a stack under Pulumi's mock runtime, with the policy report.

Where things are (one concern per module):

- :mod:`.cli`: the command line (arguments, exit status).
- :mod:`.planner`: :func:`run_plan` and :class:`PlanResult`, the steps in the engine's order.
- :mod:`.project`: ``Pulumi.yaml`` and ``Pulumi.<stack>.yaml`` into the config map (strict keys).
- :mod:`.runtime`: run a program under the mocks and record what it registers (component tests use it).
- :mod:`.mock_aws`: deterministic AWS-shaped values and data-source answers.
- :mod:`.provider`: the AWS provider's behaviour a preview depends on: :mod:`.provider.names`
  (where names are generated, and their limits), :mod:`.provider.unknowns` (what is known in a
  preview), :mod:`.provider.replacements` (changes that force replacement).
- :mod:`.state`, :mod:`.diff`: the prior state (``--state``) and the operation per resource.
- :mod:`.pack_config`, :mod:`.policy_runner`: policy-pack config and evaluation.
- :mod:`.baseline`: comparison with an earlier plan (``--baseline``).
- :mod:`.source`: the program line that created each resource (from the SDK's stack trace).
- :mod:`.config_findings`: the stack's example config values (the program's ``placeholders`` output)
  as advisory findings.
- :mod:`.findings`, :mod:`.render`: the findings model and the text, JSON, Markdown and SARIF reports.

The names below are imported lazily, so ``python -m sarkops --help`` stays instant.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sarkops.plan.planner import PlanResult, run_plan
    from sarkops.plan.render.common import urn_type_name
    from sarkops.plan.render.jsondoc import to_json
    from sarkops.plan.render.text import render_text

__all__ = ["PlanResult", "render_text", "run_plan", "to_json", "urn_type_name"]

_HOMES = {"PlanResult": "sarkops.plan.planner", "run_plan": "sarkops.plan.planner",
          "to_json": "sarkops.plan.render.jsondoc", "render_text": "sarkops.plan.render.text",
          "urn_type_name": "sarkops.plan.render.common"}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        import importlib

        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'sarkops.plan' has no attribute {name!r}")
