# Shared by the toolchain installers: apt packages, installed only when missing.
set -euo pipefail
TOOLCHAINS=${UNIFAAS_TOOLCHAINS:-${XDG_CACHE_HOME:-$HOME/.cache}/unifaas/toolchains}
mkdir -p "$TOOLCHAINS"

apt_install() {  # apt_install [-t SUITE] PACKAGE...
  local suite=()
  if [ "$1" = "-t" ]; then suite=(-t "$2"); shift 2; fi
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  if ((${#missing[@]})); then
    echo "toolchain: apt-get install ${missing[*]}"
    local sudo=()
    [ "$(id -u)" = 0 ] || sudo=(sudo)
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
      "${suite[@]}" "${missing[@]}" >/dev/null
  fi
}

backports() {  # Debian 12's backports suite, added once
  local list=/etc/apt/sources.list.d/unifaas-bookworm-backports.sources
  if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
    echo "toolchain: adding bookworm-backports to apt's sources ($list)"
    local sudo=()
    [ "$(id -u)" = 0 ] || sudo=(sudo)
    printf '%s\n' "Types: deb" "URIs: http://deb.debian.org/debian" \
      "Suites: bookworm-backports" "Components: main" \
      "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg" | "${sudo[@]}" tee "$list" >/dev/null
  fi
}

npm_install() {  # npm_install DIR PACKAGE@VERSION...: into DIR/node_modules, once per list
  local dir=$1; shift
  command -v npm >/dev/null || apt_install nodejs npm
  mkdir -p "$dir"
  if [ "$(cat "$dir/.unifaas-deps" 2>/dev/null)" != "$*" ]; then
    echo "toolchain: npm install $* into $dir"
    [ -f "$dir/package.json" ] || echo '{"private": true, "type": "module"}' > "$dir/package.json"
    (cd "$dir" && npm install --no-audit --no-fund --loglevel=error "$@" >/dev/null)
    echo "$*" > "$dir/.unifaas-deps"
    return 0
  fi
  return 1  # nothing to do
}
