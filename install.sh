#!/usr/bin/env bash
# Builds docker-credential-gar from this checkout, installs it into PREFIX/bin and
# points docker at it for the Artifact Registry host(s). Safe to run again.
#
#   ./install.sh [--prefix DIR] [--registries HOST[,HOST...]]
#   ./install.sh --uninstall [--prefix DIR] [--registries HOST[,HOST...]]
#
# PREFIX defaults to $PREFIX, then ~/.local; CARGO_TARGET_DIR is respected.
set -euo pipefail

readonly NAME=docker-credential-gar
readonly PULL_EXAMPLE=europe-north1-docker.pkg.dev/cgr-nav/pull-through/nav.no/jre:openjdk-21

usage() {
	cat <<EOF
Usage: ./install.sh [--prefix DIR] [--registries HOST[,HOST...]]
       ./install.sh --uninstall [--prefix DIR] [--registries HOST[,HOST...]]

Builds $NAME from this checkout (cargo build --release --locked),
installs it as PREFIX/bin/$NAME, and runs
'$NAME configure-docker' so that docker uses it for the registry
host(s). Running it again is safe.

With --uninstall: runs '$NAME configure-docker --remove' first (only
its own entries leave docker's config.json; with --registries, only those hosts),
then removes PREFIX/bin/$NAME. Credentials stored by 'docker login' and
cached tokens are left in place; the script says where they are.

Options:
  --prefix DIR                 install into DIR/bin (default: \$PREFIX, else ~/.local)
  --registries HOST[,HOST...]  hosts to configure in docker's config.json
                               (default: europe-north1-docker.pkg.dev)
  --uninstall                  undo an install (see above)
  -h, --help                   print this help

Environment: PREFIX, CARGO_TARGET_DIR, DOCKER_CONFIG (docker's config directory).
EOF
}

say() { printf '%s\n' "$*"; }
warn() { printf 'install.sh: %s\n' "$*" >&2; }
die() {
	warn "$1"
	exit "${2:-1}"
}
usage_error() {
	warn "$1"
	warn "run './install.sh --help' for usage"
	exit 2
}

# --- command line ---------------------------------------------------------------

action=install
prefix="${PREFIX:-}"
registries=""
registries_given=false

while [ $# -gt 0 ]; do
	case "$1" in
	--prefix)
		[ $# -ge 2 ] || usage_error "--prefix needs a directory"
		prefix="$2"
		shift 2
		;;
	--prefix=*)
		prefix="${1#--prefix=}"
		shift
		;;
	--registries)
		[ $# -ge 2 ] || usage_error "--registries needs a host list"
		registries="$2"
		registries_given=true
		shift 2
		;;
	--registries=*)
		registries="${1#--registries=}"
		registries_given=true
		shift
		;;
	--uninstall)
		action=uninstall
		shift
		;;
	-h | --help)
		usage
		exit 0
		;;
	*) usage_error "unknown option '$1'" ;;
	esac
done

if [ -z "$prefix" ]; then
	[ -n "${HOME:-}" ] || die "HOME is not set; give --prefix DIR"
	prefix="$HOME/.local"
fi

# --- install ----------------------------------------------------------------------

# The checkout this script lives in.
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

build() {
	[ -f "$repo/Cargo.toml" ] || die "no Cargo.toml next to install.sh in $repo; run install.sh from a checkout of $NAME"
	command -v cargo >/dev/null 2>&1 ||
		die "cargo not found on PATH; install Rust from https://rustup.rs (then open a new shell, or run: . \"\$HOME/.cargo/env\") and run install.sh again"

	# Cargo resolves a relative CARGO_TARGET_DIR against its working directory; make it
	# absolute here, since cargo runs in the checkout.
	local target_dir="${CARGO_TARGET_DIR:-$repo/target}"
	case "$target_dir" in
	/*) ;;
	*) target_dir="$PWD/$target_dir" ;;
	esac

	say "Building $NAME (cargo build --release --locked) ..."
	(cd "$repo" && CARGO_TARGET_DIR="$target_dir" cargo build --release --locked) ||
		die "cargo build failed (see above)"

	built="$target_dir/release/$NAME"
	[ -x "$built" ] || die "cargo build succeeded but $built is missing"
}

# Copies the binary to a temporary name in the bin directory, then renames it into
# place: a running docker never sees a half-written helper.
install_binary() {
	mkdir -p "$prefix/bin" || die "cannot create $prefix/bin"
	bindir="$(cd "$prefix/bin" && pwd)"
	installed="$bindir/$NAME"

	tmp="$(mktemp "$bindir/.$NAME.XXXXXX")" || die "cannot create a temporary file in $bindir"
	trap 'rm -f "$tmp"' EXIT
	cp "$built" "$tmp"
	chmod 0755 "$tmp"
	mv -f "$tmp" "$installed"
	trap - EXIT
	say "Installed $installed"
}

configure_docker() {
	local args=(configure-docker)
	if $registries_given; then
		args+=(--registries "$registries")
	fi
	"$installed" "${args[@]}" ||
		die "installed $installed, but configuring docker failed (see above); fix that and run: $installed ${args[*]}"
}

# Docker runs the helper by name, so its directory must be on PATH.
check_path() {
	case ":$PATH:" in
	*":$bindir:"* | *":$bindir/:"*)
		local found
		found="$(command -v "$NAME" 2>/dev/null || true)"
		if [ -n "$found" ] && [ "$found" != "$installed" ]; then
			warn "warning: $found comes before $installed on PATH, so docker will run that one; remove it or reorder PATH"
		fi
		;;
	*)
		local shown="$bindir"
		if [ -n "${HOME:-}" ] && [ "${bindir#"$HOME"/}" != "$bindir" ]; then
			shown="\$HOME/${bindir#"$HOME"/}"
		fi
		warn "warning: $bindir is not on your PATH, so docker cannot find $NAME."
		warn "add this line to your shell profile (~/.bashrc, ~/.zshrc or ~/.profile), then open a new shell:"
		printf '    export PATH="%s:$PATH"\n' "$shown" >&2
		;;
	esac
}

next_steps() {
	say ""
	say "Done. Next, try:"
	say "    docker pull $PULL_EXAMPLE"
	say "$NAME gets Google credentials from your gcloud login (gcloud auth login),"
	say "a credentials file named by GOOGLE_APPLICATION_CREDENTIALS, or the metadata"
	say "server when running on Google Cloud."
}

# Takes our entries out of docker's config (with the installed binary, else the one
# on PATH), then removes the installed binary. Safe to run again.
uninstall() {
	local bindir_abs="$prefix/bin"
	local target="$bindir_abs/$NAME"
	local helper=""
	if [ -x "$target" ]; then
		helper="$target"
	elif command -v "$NAME" >/dev/null 2>&1; then
		helper="$(command -v "$NAME")"
	fi

	local args=(configure-docker --remove)
	if $registries_given; then
		args+=(--registries "$registries")
	fi
	if [ -n "$helper" ]; then
		"$helper" "${args[@]}" ||
			die "'$helper ${args[*]}' failed (see above); fix that and run install.sh --uninstall again (nothing was removed)"
	else
		local cfg="${DOCKER_CONFIG:-$HOME/.docker}/config.json"
		if grep -q '"gar"' "$cfg" 2>/dev/null; then
			warn "warning: no $NAME found in $bindir_abs or on PATH, so $cfg was not changed; remove the \"gar\" entries under \"credHelpers\" (and \"credsStore\": \"gar\") by hand"
		fi
	fi

	if [ -e "$target" ] || [ -L "$target" ]; then
		rm -f "$target" || die "cannot remove $target"
		say "Removed $target"
	else
		say "$target is not installed; nothing to remove there"
	fi
	local other
	other="$(command -v "$NAME" 2>/dev/null || true)"
	if [ -n "$other" ] && [ "$other" != "$target" ]; then
		warn "warning: another $NAME is still on PATH: $other"
	fi
	local config_dir="${GAR_CONFIG_DIR:-${XDG_CONFIG_HOME:-$HOME/.config}/$NAME}"
	local cache_dir="${GAR_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/$NAME}"
	say "Left in place: credentials stored by 'docker login' (OS keyring item \"$NAME\", or $config_dir) and cached tokens ($cache_dir); 'docker logout HOST' before uninstalling removes a stored login, and the cache directory can be deleted."
}

case "$action" in
install)
	build
	install_binary
	configure_docker
	check_path
	next_steps
	;;
uninstall)
	uninstall
	;;
esac
