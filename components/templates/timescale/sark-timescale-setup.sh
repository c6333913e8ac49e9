#!/bin/bash
# First boot of a TimescaleDB host (run once per instance by cloud-init). Idempotent: a
# replacement instance finds the data volume already formatted and the cluster on it, and
# only re-integrates them. Settings come from /etc/sark/timescale.env (no secrets there);
# the database password is fetched from Secrets Manager by sark-timescale-password.
set -euo pipefail
# shellcheck source=/dev/null
source /etc/sark/timescale.env

log() { echo "sark-timescale-setup: $*"; }

# Network steps are retried with growing pauses (5 s up to 60 s, about 15 minutes in all):
# package mirrors and the NAT path have bad minutes, and one failure must not leave the
# database host half installed for good.
retry() {
  local attempt=1 pause=5 attempts="${SARK_RETRY_ATTEMPTS:-20}"
  until "$@"; do
    if [ "${attempt}" -ge "${attempts}" ]; then
      log "giving up after ${attempt} attempts: $*"; return 1
    fi
    log "attempt ${attempt} failed, retrying in ${pause}s: $*"
    sleep "${pause}"
    attempt=$((attempt + 1))
    pause=$((pause * 2 > 60 ? 60 : pause * 2))
  done
}

imds() {
  local token
  token=$(curl -sfX PUT http://169.254.169.254/latest/api/token -H 'X-aws-ec2-metadata-token-ttl-seconds: 300')
  curl -sf -H "X-aws-ec2-metadata-token: ${token}" "http://169.254.169.254/latest/meta-data/$1"
}

# --- 1. The data volume, found by its id (the NVMe serial), formatted only if it is empty.
serial="${SARK_DATA_VOLUME_ID//-/}"
link="/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_${serial}"
for _ in $(seq 1 120); do
  [ -e "${link}" ] && break
  sleep 5
done
[ -e "${link}" ] || { log "data volume ${SARK_DATA_VOLUME_ID} not attached after 10 minutes"; exit 1; }
device=$(readlink -f "${link}")
set +e
blkid -p "${device}" >/dev/null 2>&1
probe=$?
set -e
if [ "${probe}" -eq 2 ]; then
  log "formatting the empty data volume ${SARK_DATA_VOLUME_ID} (${device})"
  mkfs.xfs -L sark-pgdata "${device}"
elif [ "${probe}" -ne 0 ]; then
  log "cannot probe ${device} (blkid exit ${probe}); refusing to touch it"; exit 1
fi
uuid=$(blkid -s UUID -o value "${device}")
mkdir -p "${SARK_DATA_MOUNT}"
grep -q "UUID=${uuid} " /etc/fstab || echo "UUID=${uuid} ${SARK_DATA_MOUNT} xfs defaults,nofail,noatime 0 2" >> /etc/fstab
mountpoint -q "${SARK_DATA_MOUNT}" || mount "${SARK_DATA_MOUNT}"

# The cluster's configuration lives on the data volume too, so a replacement instance finds
# data and configuration together and the package install does not create a second cluster.
mkdir -p "${SARK_DATA_MOUNT}/etc" /etc/postgresql
grep -q " /etc/postgresql " /etc/fstab || \
  echo "${SARK_DATA_MOUNT}/etc /etc/postgresql none bind,x-systemd.requires-mounts-for=${SARK_DATA_MOUNT} 0 0" >> /etc/fstab
mountpoint -q /etc/postgresql || mount /etc/postgresql

# A fixed uid/gid keeps the files on the volume owned by postgres on every instance.
getent group postgres >/dev/null || groupadd --system --gid "${SARK_POSTGRES_UID}" postgres
getent passwd postgres >/dev/null || useradd --system --uid "${SARK_POSTGRES_UID}" --gid postgres \
  --home-dir "${SARK_DATA_MOUNT}" --shell /bin/bash postgres

# --- 2. PostgreSQL and TimescaleDB from their official repositories.
codename=$(. /etc/os-release && echo "${VERSION_CODENAME}")
install -d -m 0755 /usr/share/keyrings
retry curl -fsSL -o /tmp/postgresql.asc https://www.postgresql.org/media/keys/ACCC4CF8.asc
gpg --dearmor --yes -o /usr/share/keyrings/postgresql.gpg /tmp/postgresql.asc
echo "deb [signed-by=/usr/share/keyrings/postgresql.gpg] https://apt.postgresql.org/pub/repos/apt ${codename}-pgdg main" \
  > /etc/apt/sources.list.d/pgdg.list
retry curl -fsSL -o /tmp/timescaledb.asc https://packagecloud.io/timescale/timescaledb/gpgkey
gpg --dearmor --yes -o /usr/share/keyrings/timescaledb.gpg /tmp/timescaledb.asc
echo "deb [signed-by=/usr/share/keyrings/timescaledb.gpg] https://packagecloud.io/timescale/timescaledb/ubuntu/ ${codename} main" \
  > /etc/apt/sources.list.d/timescaledb.list
retry apt-get update
export DEBIAN_FRONTEND=noninteractive
retry apt-get install -y "postgresql-${SARK_PG_MAJOR}" "postgresql-client-${SARK_PG_MAJOR}"
ts_pkg="timescaledb-2-postgresql-${SARK_PG_MAJOR}"
ts_version=$(apt-cache madison "${ts_pkg}" | awk -v want="${SARK_TIMESCALEDB_VERSION}." 'index($3, want) == 1 {print $3; exit}')
[ -n "${ts_version}" ] || { log "no ${ts_pkg} ${SARK_TIMESCALEDB_VERSION}.x in the repository"; exit 1; }
retry apt-get install -y "${ts_pkg}=${ts_version}" "timescaledb-2-loader-postgresql-${SARK_PG_MAJOR}=${ts_version}" \
  timescaledb-tools
# The extension version must only change together with ALTER EXTENSION; keep unattended upgrades off it.
apt-mark hold "${ts_pkg}" "timescaledb-2-loader-postgresql-${SARK_PG_MAJOR}"
chown postgres:postgres "${SARK_DATA_MOUNT}"

# --- 3. Configuration: TLS, private address only, app subnets only.
conf_dir="/etc/postgresql/${SARK_PG_MAJOR}/main"
[ -d "${conf_dir}" ] || pg_createcluster "${SARK_PG_MAJOR}" main
private_ip=$(imds local-ipv4)
tls_dir="${conf_dir}/tls"
install -d -o postgres -g postgres -m 0700 "${tls_dir}"
# The stack's CA (kept with the cluster) signs a certificate for this address; clients verify it.
/usr/local/sbin/sark-timescale-tls "${tls_dir}" "${private_ip}"
# --max-conns sizes work_mem for the connection budget; conf.d/50-sark.conf sets the same max_connections.
timescaledb-tune --quiet --yes --max-conns="${SARK_MAX_CONNECTIONS}" --conf-path="${conf_dir}/postgresql.conf" >/dev/null
install -d -o postgres -g postgres "${conf_dir}/conf.d"
sed -e "s/@PRIVATE_IP@/${private_ip}/g" -e "s#@TLS_DIR@#${tls_dir}#g" /etc/sark/postgresql-sark.conf \
  > "${conf_dir}/conf.d/50-sark.conf"
install -o postgres -g postgres -m 0640 /etc/sark/pg_hba.conf "${conf_dir}/pg_hba.conf"
systemctl enable "postgresql@${SARK_PG_MAJOR}-main"
systemctl restart "postgresql@${SARK_PG_MAJOR}-main"
for _ in $(seq 1 60); do pg_isready -q -h /var/run/postgresql && break; sleep 2; done

# --- 4. Database, role and extension (idempotent), then the password from Secrets Manager.
runuser -u postgres -- psql --no-psqlrc -v ON_ERROR_STOP=1 -v db="${SARK_DB_NAME}" -v usr="${SARK_DB_USER}" -d postgres <<'SQL'
SELECT format('CREATE ROLE %I LOGIN', :'usr') WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'usr')\gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'usr') WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db')\gexec
SELECT format('GRANT ALL PRIVILEGES ON DATABASE %I TO %I', :'db', :'usr')\gexec
SQL
runuser -u postgres -- psql --no-psqlrc -v ON_ERROR_STOP=1 -d "${SARK_DB_NAME}" \
  -c 'CREATE EXTENSION IF NOT EXISTS timescaledb CASCADE;'
/usr/local/sbin/sark-timescale-password apply AWSCURRENT

# --- 5. CloudWatch agent (configuration from the monitoring tier's SSM parameter), if given.
if [ -n "${SARK_CLOUDWATCH_AGENT_PARAMETER:-}" ]; then
  retry curl -fsSL -o /tmp/amazon-cloudwatch-agent.deb \
    https://amazoncloudwatch-agent.s3.amazonaws.com/ubuntu/amd64/latest/amazon-cloudwatch-agent.deb
  retry apt-get install -y /tmp/amazon-cloudwatch-agent.deb
  # Retried: on a first deployment the monitoring tier creates this parameter after the host.
  retry /opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl -a fetch-config -m ec2 -s \
    -c "ssm:${SARK_CLOUDWATCH_AGENT_PARAMETER}"
fi
# --- 6. Publish the CA (clients verify the server with it) and, last, that this host is ready.
/usr/local/sbin/sark-timescale-password publish "${tls_dir}/ca.crt"
log "ready: ${SARK_DB_NAME} on ${private_ip}:${SARK_PORT} (TLS required)"
