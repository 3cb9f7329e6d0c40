#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages mesolive and its tests need, where missing.
# Called by `make run` and `make test`; a no-op when everything is there.
set -euo pipefail

PKGS=(
  python3-venv
  # MesoInception-4's C kernel is built on first use; the GPU-path tests compile a stand-in libcuda.so.1
  gcc libc6-dev
  # capture: video decoding server for stream tests, a virtual X display (mss, python-xlib)
  ffmpeg xvfb xauth
  libxcb1 libxcb-randr0 libxcb-render0 libxcb-shm0 libxcb-xfixes0
  # Qt offscreen
  libegl1 libgl1 libfontconfig1 libxkbcommon0 libglib2.0-0 libdbus-1-3
  # Qt in a real window (X11 / Xvfb)
  libx11-xcb1 libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libxcb-image0
  libxcb-keysyms1 libxcb-render-util0 libxcb-shape0 libxcb-sync1 libxcb-xkb1
)

command -v dpkg >/dev/null 2>&1 || { echo "system-deps: not a Debian system; install the Qt/X11 libraries listed in $0 yourself" >&2; exit 0; }
missing=()
for p in "${PKGS[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
((${#missing[@]})) || exit 0
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "system-deps: missing ${missing[*]}; install them as root" >&2; exit 1; }
  SUDO="sudo"
fi
echo "system-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
