#!/bin/bash
# Install one SARK release into /opt/sark (checklist Pre-Deployment 4.1 and 4.2).
# Usage: sark-install <repository-url> <tag-or-branch>
#
# Runs once, as root, from cloud-init. The code and the virtualenv belong to root and are
# only readable by the sark group: the service (user sark) can run the app but not change
# it, so a compromised process cannot persist by rewriting its own code. Only the env file
# belongs to sark (mode 600), as the checklist asks.
set -euo pipefail

if [ "$#" -ne 2 ]; then
    echo "usage: $0 <repository-url> <tag-or-branch>" >&2
    exit 2
fi
repository_url=$1
release=$2
app_dir=/opt/sark

id sark >/dev/null
install -d -o root -g sark -m 0750 "$app_dir"

# init + fetch instead of `git clone`: the directory already exists, and fetching the one
# ref at depth 1 works for a tag and for a branch alike.
if [ ! -d "$app_dir/.git" ]; then
    git -C "$app_dir" init --quiet
    git -C "$app_dir" remote add origin "$repository_url"
fi
git -C "$app_dir" fetch --quiet --depth 1 origin "$release"
git -C "$app_dir" -c advice.detachedHead=false checkout --quiet --force FETCH_HEAD

python3.11 -m venv "$app_dir/venv"
"$app_dir/venv/bin/pip" install --quiet --upgrade pip setuptools wheel
if [ -f "$app_dir/requirements.txt" ]; then
    "$app_dir/venv/bin/pip" install --quiet -r "$app_dir/requirements.txt"
fi
"$app_dir/venv/bin/pip" install --quiet "$app_dir"
"$app_dir/venv/bin/python" -c 'import sark; print("installed sark", getattr(sark, "__version__", "(no __version__)"))'

chown -R root:sark "$app_dir"
chmod -R u=rwX,g=rX,o= "$app_dir"
