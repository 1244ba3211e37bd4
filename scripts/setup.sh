#!/usr/bin/env bash
# Installs what cellm needs on a fresh Debian/Ubuntu machine: a Rust toolchain is
# assumed (rustup); the Vulkan loader and Mesa's software driver (lavapipe) let the
# GPU tests run without a GPU. Safe to run again.
set -euo pipefail
need_vulkan=1
if ldconfig -p 2>/dev/null | grep -q libvulkan.so.1 && ls /usr/share/vulkan/icd.d/lvp_icd*.json >/dev/null 2>&1; then
  need_vulkan=0
fi
if [ "$need_vulkan" = 1 ] && command -v apt-get >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq || true
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends libvulkan1 mesa-vulkan-drivers >/dev/null
fi
command -v cargo >/dev/null || { echo "cargo not found: install Rust from https://rustup.rs" >&2; exit 1; }
