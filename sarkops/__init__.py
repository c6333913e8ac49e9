"""Offline operations on the SARK Pulumi project: ``python -m sarkops plan`` and ``verify``.

``plan`` runs the Pulumi program under Pulumi's mock runtime (no CLI, no provider plugin, no
AWS credentials), records every resource it registers, evaluates the CrossGuard policy packs
over those resources through the policy SDK's own analyzer code path, and prints a report.

Packages (see each package's docstring for its modules):

- :mod:`sarkops.plan`: ``python -m sarkops plan``, the offline preview (project and config
  loading, the mock runtime and recording, AWS provider emulation, policy evaluation, diff
  against a prior state and a baseline, text/JSON/Markdown reports).
- :mod:`sarkops.verify`: ``python -m sarkops verify``, checks of a deployed stack.

Every module imports its heavy dependencies (pulumi, pulumi_policy) lazily or at most once, so
``python -m sarkops --help`` stays instant and ``plan`` pays only for what it uses.
"""

from sarkops.errors import SarkopsError

__all__ = ["SarkopsError"]
