#!/bin/bash
# Run SARK's database migrations on this host (checklist Pre-Deployment 4.3).
# Invoked by the release gate through SSM Run Command, as root, on one host of the new version.
#
# Each step runs as user sark in a transient systemd unit with the service's own
# EnvironmentFile, so the database credentials are parsed exactly as the service parses them
# and never pass through a shell's expansion or a command line.
set -euo pipefail

# cloud-init exits non-zero if the install failed: the release must stop here, not migrate
# with a half-installed app.
cloud-init status --wait >/dev/null
test -x /opt/sark/venv/bin/alembic

# The app's own login may only read and write rows; schema changes run as the RDS master, whose
# login goes to a separate file for this step only (never into SARK's environment).
/usr/local/sbin/sark-render-env --migration-env /opt/sark/.env.migrate
trap 'rm -f /opt/sark/.env.migrate' EXIT

as_sark() {
    systemd-run --quiet --wait --pipe --collect --uid=sark --gid=sark \
        --property=EnvironmentFile=/opt/sark/.env.production \
        --property=WorkingDirectory=/opt/sark "$@"
}

as_master() {
    systemd-run --quiet --wait --pipe --collect --uid=sark --gid=sark \
        --property=EnvironmentFile=/opt/sark/.env.production \
        --property=EnvironmentFile=/opt/sark/.env.migrate \
        --property=WorkingDirectory=/opt/sark "$@"
}

as_master /opt/sark/venv/bin/alembic upgrade head
as_master /opt/sark/venv/bin/alembic current

shopt -s nullglob
for migration in /opt/sark/migrations/timescale/*.sql; do
    echo "applying ${migration##*/}"
    # Single quotes: the variables expand inside the unit's shell, from its environment.
    # verify-full against the stack's CA (TIMESCALE_SSLMODE/TIMESCALE_SSLROOTCERT, published by the
    # TimescaleDB host); "require" only when an older stack publishes no CA.
    as_sark /bin/sh -c 'PGPASSWORD="$TIMESCALE_PASSWORD" PGSSLMODE="${TIMESCALE_SSLMODE:-require}" \
        PGSSLROOTCERT="${TIMESCALE_SSLROOTCERT:-}" exec psql -X -q -v ON_ERROR_STOP=1 \
        -h "$TIMESCALE_HOST" -p "$TIMESCALE_PORT" -U "$TIMESCALE_USER" -d "$TIMESCALE_DB" -f "$1"' sark-migrate "$migration"
done
echo "migrations complete"
