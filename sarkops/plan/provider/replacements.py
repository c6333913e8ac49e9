"""Which input changes force AWS to replace a stateful resource instead of updating it in place.

A bridged provider marks a change as a replacement when a Terraform attribute with
``ForceNew: true`` (or a ``CustomizeDiff`` ``ForceNewIf``) changes; the engine then plans a
replace (``diff.Replace()`` in pulumi/pulumi ``pkg/resource/deploy/step_generator.go``), and a
program's ``replace_on_changes`` option adds keys of its own. Terraform's snake_case attributes
map to Pulumi's camelCase properties; a nested ``ForceNew`` attribute is written
``parent.child``; blocks whose every field is ``ForceNew`` are listed whole.

Sources (hashicorp/terraform-provider-aws, the version the index holds):

- ``aws:rds/instance:Instance``: ``internal/service/rds/instance.go`` (resourceInstance schema).
- ``aws:elasticache/replicationGroup:ReplicationGroup``: ``internal/service/elasticache/replication_group.go``
  (schema, plus ``ForceNewIf("transit_encryption_enabled")`` for engine versions before 7.0.5).
- ``aws:ebs/volume:Volume``: ``internal/service/ec2/ebs_volume.go``.
- ``aws:ec2/instance:Instance``: ``internal/service/ec2/ec2_instance.go``; ``ami``,
  ``associate_public_ip_address``, ``availability_zone`` and ``tenancy`` sit outside the part of
  the schema re-read for this table and are taken from the provider documentation; ``user_data``
  replaces only with ``user_data_replace_on_change`` (its CustomizeDiff).
- ``aws:kms/key:Key``: ``internal/service/kms/key.go``.
- ``aws:secretsmanager/secret:Secret``: ``internal/service/secretsmanager/secret.go``.
- ``aws:lb/loadBalancer:LoadBalancer``: ``internal/service/elbv2/load_balancer.go``.
- ``aws:s3/bucket:Bucket``: ``internal/service/s3/bucket.go`` (``bucket``, ``bucket_prefix``,
  ``object_lock_enabled``; not re-read for this table).

Other types: changes are reported as updates; whether AWS could apply them in place is not
modelled (README: what the offline plan cannot know).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

FORCE_NEW: dict[str, tuple[str, ...]] = {
    "aws:rds/instance:Instance": (
        "availabilityZone", "characterSetName", "customIamInstanceProfile", "dbName", "engine", "identifier",
        "identifierPrefix", "kmsKeyId", "name", "ncharCharacterSetName", "restoreToPointInTime", "s3Import",
        "snapshotIdentifier", "storageEncrypted", "timezone", "username"),
    "aws:elasticache/replicationGroup:ReplicationGroup": (
        "atRestEncryptionEnabled", "dataTieringEnabled", "globalReplicationGroupId", "kmsKeyId", "networkType",
        "port", "replicationGroupId", "securityGroupNames", "snapshotArns", "snapshotName", "subnetGroupName"),
    "aws:ebs/volume:Volume": (
        "availabilityZone", "encrypted", "kmsKeyId", "multiAttachEnabled", "outpostArn", "snapshotId"),
    "aws:ec2/instance:Instance": (
        "ami", "associatePublicIpAddress", "availabilityZone", "cpuCoreCount", "cpuThreadsPerCore",
        "cpuOptions.amdSevSnp", "cpuOptions.coreCount", "cpuOptions.threadsPerCore", "ebsBlockDevices",
        "ebsOptimized", "enclaveOptions.enabled", "ephemeralBlockDevices", "hibernation", "hostId",
        "ipv6AddressCount", "ipv6Addresses", "keyName", "launchTemplate", "networkInterfaces", "placementGroup",
        "placementPartitionNumber", "privateDnsNameOptions", "privateIp", "rootBlockDevice.encrypted",
        "rootBlockDevice.kmsKeyId", "securityGroups", "subnetId", "tenancy"),
    "aws:s3/bucket:Bucket": ("bucket", "bucketPrefix", "objectLockEnabled"),
    "aws:s3/bucketV2:BucketV2": ("bucket", "bucketPrefix", "objectLockEnabled"),
    "aws:kms/key:Key": ("customKeyStoreId", "customerMasterKeySpec", "keyUsage", "multiRegion", "xksKeyId"),
    "aws:secretsmanager/secret:Secret": ("name", "namePrefix"),
    "aws:lb/loadBalancer:LoadBalancer": ("customerOwnedIpv4Pool", "internal", "loadBalancerType", "name", "namePrefix"),
    "aws:alb/loadBalancer:LoadBalancer": ("customerOwnedIpv4Pool", "internal", "loadBalancerType", "name",
                                          "namePrefix"),
}
"""Type token -> properties (``a.b`` for nested) whose change forces a replacement."""


def _version_before(version: Any, limit: tuple[int, ...]) -> bool:
    parts: list[int] = []
    for piece in str(version or "").split("."):
        if not piece.isdigit():
            break
        parts.append(int(piece))
    return bool(parts) and tuple(parts) < limit


def _ec2_user_data(old: Mapping[str, Any], new: Mapping[str, Any], _outputs: Mapping[str, Any]) -> list[str]:
    if new.get("userDataReplaceOnChange") is not True:
        return []
    return [key for key in ("userData", "userDataBase64") if old.get(key) != new.get(key)]


def _redis_transit(old: Mapping[str, Any], new: Mapping[str, Any], outputs: Mapping[str, Any]) -> list[str]:
    key = "transitEncryptionEnabled"
    if old.get(key) != new.get(key) and _version_before(outputs.get("engineVersionActual"), (7, 0, 5)):
        return [key]
    return []


CONDITIONAL: dict[str, Callable[[Mapping[str, Any], Mapping[str, Any], Mapping[str, Any]], list[str]]] = {
    "aws:ec2/instance:Instance": _ec2_user_data,
    "aws:elasticache/replicationGroup:ReplicationGroup": _redis_transit,
}
"""CustomizeDiff ``ForceNewIf`` rules: fn(old inputs, new inputs, old outputs) -> keys forcing replacement."""


def _lookup(values: Mapping[str, Any], path: str) -> Any:
    current: Any = values
    for part in path.split("."):
        if isinstance(current, list):
            current = current[0] if current else None
        if not isinstance(current, Mapping):
            return None
        current = current.get(part)
    return current


def replacement_keys(type_: str, old_inputs: Mapping[str, Any], new_inputs: Mapping[str, Any], *,
                     old_outputs: Mapping[str, Any], changed: Sequence[str],
                     replace_on_changes: Sequence[str] = ()) -> list[str]:
    """The changed properties that force a replacement of this resource (empty: an in-place update)."""
    keys = [path for path in FORCE_NEW.get(type_, ())
            if path.split(".", 1)[0] in changed and _lookup(old_inputs, path) != _lookup(new_inputs, path)]
    conditional = CONDITIONAL.get(type_)
    if conditional is not None:
        keys += [key for key in conditional(old_inputs, new_inputs, old_outputs) if key not in keys]
    # replace_on_changes: "*" means any change; otherwise top-level property names (or paths).
    for key in replace_on_changes:
        top = key.split(".", 1)[0].split("[", 1)[0]
        if (key == "*" and changed) or top in changed:
            keys += [k for k in (changed if key == "*" else [top]) if k not in keys]
    return sorted(keys)
