#!/usr/bin/env bash
# Go for GOOS=wasip1 (Go >= 1.21): golang-1.23-go from Debian's bookworm-backports.
. "$(dirname "$0")/common.sh"
backports
apt_install -t bookworm-backports golang-1.23-go
