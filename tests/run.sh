#!/usr/bin/env bash
# The test command: installs what the tests need from Debian, then runs them all.
#   ./tests/run.sh            # every test
#   ./tests/run.sh cache      # extra arguments go to `cargo test`
set -euo pipefail
cd "$(dirname "$0")/.."

# skopeo and docker-registry are the real client and registry of the end-to-end
# tests; htpasswd (apache2-utils) and openssl set up the registry's auth and TLS.
# dbus, gnome-keyring and libsecret-tools (secret-tool) are the real Secret Service
# of the keyring-backed store tests.
pkgs=(skopeo docker-registry apache2-utils openssl ca-certificates dbus gnome-keyring libsecret-tools)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  if [ "$(id -u)" = 0 ]; then sudo=(); elif command -v sudo >/dev/null; then sudo=(sudo); else
    echo "tests/run.sh: please install: ${missing[*]} (apt-get install ${missing[*]})" >&2
    exit 1
  fi
  echo "tests/run.sh: installing ${missing[*]}" >&2
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

command -v gcloud >/dev/null || echo "tests/run.sh: note: gcloud is not installed; real-gcloud tests will print SKIP and the gcloud stub covers that logic" >&2
if ! command -v docker >/dev/null; then
  echo "tests/run.sh: the end-to-end tests need the docker CLI (no daemon): install it (Debian: apt-get install docker.io) and run again" >&2
  exit 1
fi

cargo test --locked "$@"
