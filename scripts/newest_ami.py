"""Print the newest Canonical Ubuntu 22.04 amd64 image id, for a deliberate bump of a pinned image.

The stack pins its images (``appImageId``, ``timescaleImageId``): a lookup of "the newest"
inside the program would roll every app host, without a release gate, on the first
``pulumi up`` after Canonical publishes an image. This script is the lookup, run on purpose:

    python scripts/newest_ami.py --region us-east-1
    pulumi config set appImageId "$(python scripts/newest_ami.py --region us-east-1)"

It prints the id on stdout (and name and creation date on stderr). It looks for exactly the
name pattern the program checks the pinned id against (components/app_hosts.py,
``UBUNTU_JAMMY_AMD64``), owned by Canonical (099720109477), available, x86_64. Needs AWS
credentials allowed ``ec2:DescribeImages``. Exit 1 with a message if nothing matches.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from components.app_hosts import CANONICAL_OWNER_ID, UBUNTU_JAMMY_AMD64


def newest_image(ec2: Any, *, owner: str = CANONICAL_OWNER_ID,
                 pattern: str = UBUNTU_JAMMY_AMD64) -> dict[str, Any] | None:
    """The newest available x86_64 image named like ``pattern`` and owned by ``owner``, or None."""
    images = [
        image
        for page in ec2.get_paginator("describe_images").paginate(
            Owners=[owner],
            Filters=[{"Name": "name", "Values": [pattern]}, {"Name": "state", "Values": ["available"]}])
        for image in page.get("Images", [])
        # Checked here rather than as a filter: the name says amd64 already, and every image
        # DescribeImages returns carries Architecture.
        if image.get("Architecture", "x86_64") == "x86_64"
    ]
    # Canonical's names end in the build serial (YYYYMMDD[.n]): the tie-breaker for equal dates.
    return max(images, key=lambda image: (image.get("CreationDate", ""), image["Name"]), default=None)


def main(argv: list[str] | None = None, *, ec2: Any = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--region", default=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"),
                        help="AWS region (default: AWS_REGION / AWS_DEFAULT_REGION)")
    parser.add_argument("--owner", default=CANONICAL_OWNER_ID, help="image owner (default: Canonical)")
    args = parser.parse_args(argv)
    if ec2 is None:
        if not args.region:
            print("newest_ami: no region; pass --region (AMI ids differ per region)", file=sys.stderr)
            return 2
        import boto3

        ec2 = boto3.client("ec2", region_name=args.region)
    image = newest_image(ec2, owner=args.owner)
    if image is None:
        print(f"newest_ami: no available image named {UBUNTU_JAMMY_AMD64} owned by {args.owner}", file=sys.stderr)
        return 1
    print(f"{image['Name']} ({image.get('CreationDate', 'no date')})", file=sys.stderr)
    print(image["ImageId"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
