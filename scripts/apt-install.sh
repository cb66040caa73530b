#!/usr/bin/env bash
# Install the Debian packages named that are not installed yet (no recommends); quiet when
# all are. Usage: scripts/apt-install.sh WHO PACKAGE...   (WHO prefixes the one line it says)
set -euo pipefail
who=$1
shift
missing=()
for pkg in "$@"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "$who: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
