#!/usr/bin/env bash
# The user QEMU runs as, and its ids for one VM each; safe to run again. Run by
# scripts/bootstrap.sh on a host and by `unifaas container build` inside the image.
set -euo pipefail

# The unprivileged user every QEMU drops to (unikernel/confine.py): no home,
# no shell, no password; it owns no file.
VM_USER=${UNIFAAS_VM_VM_USER:-unifaas-vm}
if [ "$(id -u)" = 0 ] && [ -n "$VM_USER" ] && ! id -u "$VM_USER" >/dev/null 2>&1; then
  echo "bootstrap: creating user $VM_USER"
  useradd --system --user-group --no-create-home --home-dir /nonexistent \
          --shell /usr/sbin/nologin "$VM_USER"
fi
# Ids of its own for each VM (unikernel/vmids.py): a range of subordinate uids and gids
# of the VM user, placed after every range /etc/subuid and /etc/subgid already hold.
VM_IDS=${UNIFAAS_VM_ID_COUNT:-4096}
if [ "$(id -u)" = 0 ] && [ -n "$VM_USER" ] && id -u "$VM_USER" >/dev/null 2>&1 \
   && ! grep -qs "^$VM_USER:" /etc/subuid; then
  first=$(cat /etc/subuid /etc/subgid 2>/dev/null \
          | awk -F: 'BEGIN { end = 100000 } $2 + $3 > end { end = $2 + $3 } END { print end }')
  last=$((first + VM_IDS - 1))
  echo "bootstrap: giving $VM_USER the ids $first-$last (one per VM)"
  usermod --add-subuids "$first-$last" --add-subgids "$first-$last" "$VM_USER"
fi
