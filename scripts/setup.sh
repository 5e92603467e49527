#!/usr/bin/env bash
# Installs what tune needs to build and test on Debian 12 (run as root):
# Debian's libraries (JSON, BLAS, PCRE2, utf8proc, YAML, cmocka) and, for
# the reference tests, the npm packages in package.json.
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(build-essential pkg-config libcjson-dev libopenblas-dev libpcre2-dev libutf8proc-dev
      libyaml-dev libcmocka-dev python3 python3-jinja2 nodejs npm)
missing=()
for p in "${PKGS[@]}"; do
    # A node from elsewhere (nodesource's nodejs bundles npm) conflicts with Debian's npm.
    [ "$p" = npm ] && command -v npm >/dev/null 2>&1 && continue
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# npm may already be present outside dpkg (a node from elsewhere): accept that.
if [ -f package.json ]; then
    if [ ! -d node_modules ] || [ package.json -nt node_modules ] || [ package-lock.json -nt node_modules ]; then
        echo "setup: installing npm packages"
        if [ -f package-lock.json ]; then npm ci --no-audit --no-fund --loglevel=error; else npm install --no-audit --no-fund --loglevel=error; fi
        touch node_modules
    fi
fi
echo "setup: ok"
