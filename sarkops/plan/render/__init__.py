"""Reports of a plan: :mod:`.text` (the human report), :mod:`.jsondoc` (``--json``), :mod:`.markdown`
(the PR summary), :mod:`.sarif` (``--sarif``, for code scanning). :mod:`.common` holds what they
share: secret scrubbing and orderings."""
