#!/bin/bash
# Install and start the CloudWatch agent (docs/observability.md).
# Usage: sark-install-agent <ssm-parameter-with-the-agent-config> [<service-to-restart>...]
#
# Runs from cloud-init BEFORE the SARK install, so the install's own output
# (/var/log/cloud-init-output.log) already reaches CloudWatch Logs. Every network step is
# retried: the agent package comes from S3 through the NAT gateway, and on a first
# deployment the configuration parameter is created by the monitoring tier a few minutes
# after the hosts launch. cloud-init does not stop the SARK install when this fails (a host
# without its agent still serves); the failure is in cloud-init-output.log and the console.
set -euo pipefail

if [ "$#" -lt 1 ]; then
    echo "usage: $0 <ssm-parameter> [<service>...]" >&2
    exit 2
fi
parameter=$1
shift
package_url=${SARK_AGENT_PACKAGE_URL:-https://amazoncloudwatch-agent.s3.amazonaws.com/ubuntu/amd64/latest/amazon-cloudwatch-agent.deb}
package=${SARK_AGENT_PACKAGE:-/var/cache/sark/amazon-cloudwatch-agent.deb}
ctl=${SARK_AGENT_CTL:-/opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl}
attempts=${SARK_RETRY_ATTEMPTS:-20}

retry() {
    local attempt=1 pause=5
    until "$@"; do
        if [ "$attempt" -ge "$attempts" ]; then
            echo "sark-install-agent: giving up after $attempt attempts: $*" >&2
            return 1
        fi
        echo "sark-install-agent: attempt $attempt failed, retrying in ${pause}s: $*" >&2
        sleep "$pause"
        attempt=$((attempt + 1))
        pause=$((pause * 2 > 60 ? 60 : pause * 2))
    done
}

mkdir -p "$(dirname "$package")"
retry curl -fsSL --retry 3 -o "$package" "$package_url"
retry apt-get install -y "$package"
for service in "$@"; do
    systemctl restart "$service"
done
# Retried for about 15 minutes: the parameter may not exist yet on a first deployment.
retry "$ctl" -a fetch-config -m ec2 -s -c "ssm:$parameter"
echo "sark-install-agent: CloudWatch agent running with ssm:$parameter"
