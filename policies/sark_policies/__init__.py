"""SARK's CrossGuard rules, one module per AWS service. ``POLICIES`` is the whole pack.

Importing this package has no side effects: ``policies/__main__.py`` is the only place that
constructs the ``PolicyPack`` (which starts a gRPC server and blocks), so tests and
``sarkops plan`` can import the rules.
"""

from . import vpc

POLICIES = [
    *vpc.POLICIES,
]
