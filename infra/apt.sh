#!/usr/bin/env bash
# apt-get that waits for the dpkg/apt locks instead of failing at once (issue 12 §7).
#
#   bash infra/apt.sh install PACKAGE...   apt-get update + install -y (non-interactive)
#   source infra/apt.sh; apt_get ARGS...   the same wrapper from another script
#
# On a busy machine (unattended-upgrades, another `make test` installing chromium) apt-get
# stops with "Could not get lock /var/lib/dpkg/lock-frontend" or ".../lists/lock". apt's own
# `DPkg::Lock::Timeout` makes it wait for the dpkg frontend lock; the lists lock of `update`
# is not covered by it on every apt version, so a lock failure is also retried here: every
# APT_LOCK_RETRY_SECONDS (5) until APT_LOCK_WAIT_SECONDS (600) have passed, then it fails
# with apt's message. Any other apt error fails at once.
set -euo pipefail

APT_LOCK_WAIT_SECONDS="${APT_LOCK_WAIT_SECONDS:-600}"
APT_LOCK_RETRY_SECONDS="${APT_LOCK_RETRY_SECONDS:-5}"

apt_get() {
  local sudo=() deadline out rc
  # microseconds: whole seconds from `date +%s` cut a 1 s wait to a single try when the
  # first call ended in the next second
  if [[ "$(id -u)" != 0 ]]; then
    command -v sudo >/dev/null 2>&1 || { echo "apt.sh: not root and no sudo" >&2; return 1; }
    sudo=(sudo)
  fi
  deadline=$((${EPOCHREALTIME/./} + APT_LOCK_WAIT_SECONDS * 1000000))
  while true; do
    rc=0
    out="$("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get \
      -o DPkg::Lock::Timeout="$APT_LOCK_WAIT_SECONDS" "$@" 2>&1)" || rc=$?
    if ((rc == 0)); then
      [[ -n "$out" ]] && printf '%s\n' "$out"
      return 0
    fi
    if ! grep -qiE "could not get lock|unable to acquire the dpkg frontend lock|unable to lock" \
      <<<"$out"; then
      printf '%s\n' "$out" >&2
      return "$rc"
    fi
    if ((${EPOCHREALTIME/./} >= deadline)); then
      printf '%s\n' "$out" >&2
      echo "apt.sh: the apt/dpkg lock was still held after ${APT_LOCK_WAIT_SECONDS}s" >&2
      return "$rc"
    fi
    echo "apt.sh: apt/dpkg lock held by another process; retrying in ${APT_LOCK_RETRY_SECONDS}s" >&2
    sleep "$APT_LOCK_RETRY_SECONDS"
  done
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  case "${1:-}" in
    install)
      shift
      (($# > 0)) || { echo "usage: $0 install PACKAGE..." >&2; exit 2; }
      apt_get update -q
      apt_get install -y -q -o Dpkg::Options::=--force-confdef \
        -o Dpkg::Options::=--force-confold "$@"
      ;;
    *)
      echo "usage: $0 install PACKAGE...   (or source it and call apt_get)" >&2
      exit 2
      ;;
  esac
fi
