#!/usr/bin/env bash
# System packages the tests and the demo use: git (with git-http-backend), OpenSSH's sshd,
# Chromium (the dashboard's tests drive it headless over the DevTools protocol)
# and gnupg (gpg verifies signed commits; the tests sign commits and make SOPS keys with it).
set -euo pipefail
need=()
command -v git >/dev/null || need+=(git)
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v ssh-keygen >/dev/null || need+=(openssh-client)
command -v chromium >/dev/null || need+=(chromium)
command -v gpg >/dev/null || need+=(gnupg)
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "missing system packages: ${need[*]} (install them as root: apt-get install ${need[*]})" >&2
  exit 1
fi
echo "installing ${need[*]}" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
