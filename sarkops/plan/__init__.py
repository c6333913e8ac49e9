"""``sarkops plan``: offline ``pulumi preview`` of a stack under Pulumi's mock runtime, with the policy report."""

from sarkops.plan.cli import PlanResult, render_text, run_plan, to_json, urn_type_name

__all__ = ["PlanResult", "render_text", "run_plan", "to_json", "urn_type_name"]
