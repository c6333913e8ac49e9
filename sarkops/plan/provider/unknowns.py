"""What a resource's outputs look like in a preview: which values are known and which are not.

A first ``pulumi preview`` of a stack creates nothing. For each resource being created the
engine asks the provider for a *preview* of the create (``CreateStep.Apply`` with
``Preview: DryRun`` in pulumi/pulumi ``pkg/resource/deploy/step.go``); a bridged provider
answers with its planned state, in which every attribute the provider computes (ids, ARNs,
endpoints, DNS names, generated attributes, ``RandomPassword.result``) is unknown, while the
inputs, including names its ``Check`` filled in, come back as given. The id of a resource
being created is the empty string, which the SDK resolves as unknown (``resource.py``:
"TFBridge in particular is known to send the empty string as an ID when doing a preview"),
and an output the response lacks or marks unknown never reaches an ``apply`` callback
(``rpc.resolve_outputs``/``resolve_properties`` and ``Output.apply`` in the Python SDK).

A resource that already exists (``--state``) and is not replaced keeps its recorded outputs,
with the new inputs on top: the provider's diff of an update plans known values for what does
not change. A replacement is a create, so it previews like one.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from pulumi.runtime import rpc

UNKNOWN = rpc.UNKNOWN


def created(state: Mapping[str, Any], inputs: Collection[str], filled: Collection[str]) -> tuple[str, dict[str, Any]]:
    """``(id, outputs)`` of a resource previewed for creation.

    :param state: the full state the AWS mocks computed (inputs echoed plus computed values).
    :param inputs: keys the program (or the provider's Check) set: their values are known.
    :param filled: keys the provider's Check filled in (auto-names): known as well.
    """
    known = set(inputs) | set(filled)
    outputs = {key: (value if key in known else UNKNOWN) for key, value in state.items() if key != "id"}
    return "", outputs


def existing(old_id: str, old_outputs: Mapping[str, Any], state: Mapping[str, Any],
             inputs: Collection[str]) -> tuple[str, dict[str, Any]]:
    """``(id, outputs)`` of an existing resource that is updated in place or left as it is."""
    outputs = {key: value for key, value in old_outputs.items() if key != "id"}
    outputs.update({key: state[key] for key in inputs if key in state})
    return old_id, outputs
