#!/bin/bash
# Run SARK's database migrations on this host (checklist Pre-Deployment 4.3).
# Usage: sark-migrate [<release>]
# Invoked by the release gate through SSM Run Command, as root, on one host of the new version.
#
# It waits for the marker sark-install writes when the release is installed, not for all of
# cloud-init: the CloudWatch agent or the service start may still be busy, or have failed,
# without the code and its migrations being any less ready. If the install failed, it stops
# at once with the failure marker's content. With <release>, the installed one must match.
#
# Each step runs as user sark in a transient systemd unit with the service's own
# EnvironmentFile, so the database credentials are parsed exactly as the service parses them
# and never pass through a shell's expansion or a command line.
set -euo pipefail

app_dir=${SARK_APP_DIR:-/opt/sark}
marker=${SARK_INSTALL_MARKER:-/etc/sark/release-installed}
failed_marker=${SARK_INSTALL_FAILED_MARKER:-/etc/sark/release-install-failed}
render_env=${SARK_RENDER_ENV:-/usr/local/sbin/sark-render-env}
wait_seconds=${SARK_INSTALL_WAIT_SECONDS:-1800}
expected=${1:-}

waited=0
until [ -f "$marker" ]; do
    if [ -f "$failed_marker" ]; then
        echo "sark-migrate: the SARK install failed on this host; not migrating:" >&2
        cat "$failed_marker" >&2
        exit 1
    fi
    if [ "$waited" -ge "$wait_seconds" ]; then
        echo "sark-migrate: no install marker ($marker) after ${wait_seconds}s; is cloud-init still installing?" >&2
        exit 1
    fi
    sleep 5
    waited=$((waited + 5))
done
installed=$(sed -n 's/^release=//p' "$marker")
if [ -n "$expected" ] && [ "$installed" != "$expected" ]; then
    echo "sark-migrate: this host runs release $installed, not $expected; not migrating" >&2
    exit 1
fi
echo "sark-migrate: release $installed is installed"
test -x "$app_dir/venv/bin/alembic"

# The app's own login may only read and write rows; schema changes run as the RDS master, whose
# login goes to a separate file for this step only (never into SARK's environment).
"$render_env" --migration-env "$app_dir/.env.migrate"
trap 'rm -f "$app_dir/.env.migrate"' EXIT

as_sark() {
    systemd-run --quiet --wait --pipe --collect --uid=sark --gid=sark \
        --property=EnvironmentFile="$app_dir/.env.production" \
        --property=WorkingDirectory="$app_dir" "$@"
}

as_master() {
    systemd-run --quiet --wait --pipe --collect --uid=sark --gid=sark \
        --property=EnvironmentFile="$app_dir/.env.production" \
        --property=EnvironmentFile="$app_dir/.env.migrate" \
        --property=WorkingDirectory="$app_dir" "$@"
}

as_master "$app_dir/venv/bin/alembic" upgrade head
as_master "$app_dir/venv/bin/alembic" current

shopt -s nullglob
for migration in "$app_dir"/migrations/timescale/*.sql; do
    echo "applying ${migration##*/}"
    # Single quotes: the variables expand inside the unit's shell, from its environment.
    # verify-full against the stack's CA (TIMESCALE_SSLMODE/TIMESCALE_SSLROOTCERT, published by the
    # TimescaleDB host); "require" only when an older stack publishes no CA.
    as_sark /bin/sh -c 'PGPASSWORD="$TIMESCALE_PASSWORD" PGSSLMODE="${TIMESCALE_SSLMODE:-require}" \
        PGSSLROOTCERT="${TIMESCALE_SSLROOTCERT:-}" exec psql -X -q -v ON_ERROR_STOP=1 \
        -h "$TIMESCALE_HOST" -p "$TIMESCALE_PORT" -U "$TIMESCALE_USER" -d "$TIMESCALE_DB" -f "$1"' sark-migrate "$migration"
done
echo "migrations complete"
