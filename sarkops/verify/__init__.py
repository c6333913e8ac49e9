"""``sarkops verify``: check a deployed stack against the production checklist (boto3 and HTTP probes).

Modules: :mod:`sarkops.verify.cli` (the command and its report), :mod:`sarkops.verify.core`
(outputs, context, outcomes), :mod:`sarkops.verify.items` (one function per checklist item).
"""
