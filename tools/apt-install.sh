#!/usr/bin/env bash
# apt-install.sh PACKAGE WHAT: installs one of Debian's packages for the
# tests (as root, or through sudo), saying what it is for; fails with
# advice where there is no apt-get.
set -euo pipefail
package=$1 what=$2
if ! command -v apt-get >/dev/null 2>&1; then
  echo "$what is missing and this system has no apt-get: install its $package package yourself" >&2
  exit 1
fi
echo "installing Debian's $package ($what)"
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
$sudo apt-get update -qq
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$package"
