"""Offline operations on the SARK Pulumi project: ``python -m sarkops plan``.

``plan`` runs the Pulumi program under Pulumi's mock runtime (no CLI, no provider plugin, no
AWS credentials), records every resource it registers, evaluates the CrossGuard policy packs
over those resources through the policy SDK's own analyzer code path, and prints a report.

Modules:

- :mod:`sarkops.plan.runtime`: run a program under mocks and get a :class:`~sarkops.plan.runtime.Recording`
  (also used by the component tests).
- :mod:`sarkops.plan.mock_aws`: realistic, deterministic AWS resource outputs and invoke answers.
- :mod:`sarkops.plan.policy_runner`: load policy packs and evaluate them the way the engine does.
- :mod:`sarkops.plan.project`: read ``Pulumi.yaml`` and ``Pulumi.<stack>.yaml`` into the config map.
- :mod:`sarkops.plan.cli`: the ``plan`` command (argument parsing, text and JSON reports).

Every module imports its heavy dependencies (pulumi, pulumi_policy) lazily or at most once, so
``python -m sarkops --help`` stays instant and ``plan`` pays only for what it uses.
"""

from sarkops.errors import SarkopsError

__all__ = ["SarkopsError"]
