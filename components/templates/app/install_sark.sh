#!/bin/bash
# Install one SARK release into /opt/sark (checklist Pre-Deployment 4.1 and 4.2).
# Usage: sark-install <repository-url> <tag-or-branch>
#
# Runs once, as root, from cloud-init. The code and the virtualenv belong to root and are
# only readable by the sark group: the service (user sark) can run the app but not change
# it, so a compromised process cannot persist by rewriting its own code. Only the env file
# belongs to sark (mode 600), as the checklist asks.
#
# On success it writes the install marker (release and commit); on failure, the failure
# marker (the command that failed). sark-migrate waits for one of them, so a migration never
# runs against a half-installed release, and never waits on the rest of cloud-init.
set -euo pipefail

if [ "$#" -ne 2 ]; then
    echo "usage: $0 <repository-url> <tag-or-branch>" >&2
    exit 2
fi
repository_url=$1
release=$2
app_dir=${SARK_APP_DIR:-/opt/sark}
marker=${SARK_INSTALL_MARKER:-/etc/sark/release-installed}
failed_marker=${SARK_INSTALL_FAILED_MARKER:-/etc/sark/release-install-failed}
python=${SARK_PYTHON:-python3.11}
attempts=${SARK_RETRY_ATTEMPTS:-8}

rm -f "$marker" "$failed_marker"
mkdir -p "$(dirname "$marker")"
failed_step=
on_error() {
    local status=$? line=$1 step=${failed_step:-$BASH_COMMAND}
    printf 'release=%s\nstatus=%s\nline=%s\ncommand=%s\n' "$release" "$status" "$line" "$step" > "$failed_marker"
    echo "sark-install: failed at line $line: $step (exit $status)" >&2
}
trap 'on_error $LINENO' ERR

# Network steps are retried with growing pauses: on a first deployment the NAT route may
# have appeared seconds before the host, and mirrors and git hosts have bad minutes.
retry() {
    local attempt=1 pause=5
    until "$@"; do
        if [ "$attempt" -ge "$attempts" ]; then
            echo "sark-install: giving up after $attempt attempts: $*" >&2
            failed_step="$*"
            return 1
        fi
        echo "sark-install: attempt $attempt failed, retrying in ${pause}s: $*" >&2
        sleep "$pause"
        attempt=$((attempt + 1))
        pause=$((pause * 2 > 60 ? 60 : pause * 2))
    done
}

id sark >/dev/null
install -d -o root -g sark -m 0750 "$app_dir"

# init + fetch instead of `git clone`: the directory already exists, and fetching the one
# ref at depth 1 works for a tag and for a branch alike.
if [ ! -d "$app_dir/.git" ]; then
    git -C "$app_dir" init --quiet
    git -C "$app_dir" remote add origin "$repository_url"
fi
retry git -C "$app_dir" fetch --quiet --depth 1 origin "$release"
git -C "$app_dir" -c advice.detachedHead=false checkout --quiet --force FETCH_HEAD

"$python" -m venv "$app_dir/venv"
retry "$app_dir/venv/bin/pip" install --quiet --upgrade pip setuptools wheel
if [ -f "$app_dir/requirements.txt" ]; then
    retry "$app_dir/venv/bin/pip" install --quiet -r "$app_dir/requirements.txt"
fi
retry "$app_dir/venv/bin/pip" install --quiet "$app_dir"
"$app_dir/venv/bin/python" -c 'import sark; print("installed sark", getattr(sark, "__version__", "(no __version__)"))'

chown -R root:sark "$app_dir"
chmod -R u=rwX,g=rX,o= "$app_dir"

commit=$(git -C "$app_dir" rev-parse HEAD)
printf 'release=%s\ncommit=%s\n' "$release" "$commit" > "$marker.tmp"
mv "$marker.tmp" "$marker"
echo "sark-install: $release ($commit) installed"
