#!/usr/bin/env bash
# System packages the tests and the demo use: git (with git-http-backend), OpenSSH's sshd,
# Chromium (the dashboard's tests drive it headless over the DevTools protocol)
# and gnupg (gpg verifies signed commits; the tests sign commits and make SOPS keys with it).
# The real node of tests/e2e/test_real_node.py: containerd, runc and the CNI plugins
# (testenv/node.py runs its own containerd, never the packaged service), mmdebstrap,
# busybox-static and gcc build its images (testenv/images.py), iproute2 its network namespace.
set -euo pipefail
need=()
command -v git >/dev/null || need+=(git)
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v ssh-keygen >/dev/null || need+=(openssh-client)
command -v chromium >/dev/null || need+=(chromium)
command -v gpg >/dev/null || need+=(gnupg)
command -v containerd >/dev/null || need+=(containerd)
command -v runc >/dev/null || need+=(runc)
[ -x /usr/lib/cni/bridge ] || need+=(containernetworking-plugins)
command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
command -v gcc >/dev/null || need+=(gcc libc6-dev)
command -v ip >/dev/null || need+=(iproute2)
command -v iptables >/dev/null || need+=(iptables)
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "missing system packages: ${need[*]} (install them as root: apt-get install ${need[*]})" >&2
  exit 1
fi
echo "installing ${need[*]}" >&2
apt-get update -qq
# Packages must not start services (containerd's): the tests start their own, with
# private sockets and state. policy-rc.d is Debian's switch for that; leave one
# that was there alone.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod +x "$policy"
  trap 'rm -f "$policy"' EXIT
fi
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
# Under systemd the unit may still be enabled for the next boot.
if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
  systemctl disable --now containerd.service >/dev/null 2>&1 || true
fi
