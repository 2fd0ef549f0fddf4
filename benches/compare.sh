#!/usr/bin/env bash
# Prints one table comparing docker-credential-gar with the helpers people use
# today, measured in one run on this machine against the local fake of Google:
# warm get, cold get per source, 64 concurrent cold gets, docker-credential-gcloud,
# a Go helper's bare start, /bin/true, peak RSS and binary size.
#   benches/compare.sh
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v hyperfine >/dev/null || need+=(hyperfine)
[ -x /usr/bin/time ] || need+=(time)
command -v docker-credential-pass >/dev/null || need+=(golang-docker-credential-helpers)
if ((${#need[@]})); then
  if [ "$(id -u)" = 0 ]; then sudo=(); else sudo=(sudo); fi
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
cargo build --release --locked --bins --examples
cargo test --release --locked --test bench_compare -- --ignored --nocapture compare
