#!/usr/bin/env bash
# Set up webgpu-nn on this machine: npm packages, a build, and a working WebGPU adapter.
#
# Idempotent: run it as often as you like. When an adapter already works it changes nothing on the system.
# On Debian 12 without a GPU (as root) it installs Mesa's software Vulkan driver (lavapipe) from
# bookworm-backports, because Debian 12's own Mesa 22.3 is refused by Dawn (see README, "Machines").
#
#   bash scripts/setup.sh            set up and say what adapter was found
#   bash scripts/setup.sh --quiet    print only problems (used by `npm test`)
set -euo pipefail
cd "$(dirname "$0")/.."

quiet=0
[[ "${1:-}" == "--quiet" ]] && quiet=1
say() { [[ $quiet == 1 ]] || echo "setup: $*"; }
die() { echo "setup: error: $*" >&2; exit 1; }

# 1. Node.js 20 or newer.
command -v node >/dev/null || die "Node.js is not installed. Install Node.js 20 or newer (https://nodejs.org) and run this again."
node_major=$(node -p 'process.versions.node.split(".")[0]')
(( node_major >= 20 )) || die "Node.js $(node --version) is too old. Install Node.js 20 or newer and run this again."

# 2. npm packages, exactly as locked. Skipped when node_modules already matches the lock.
if [[ ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
  say "installing npm packages (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error >&2
fi

# 3. Build (TypeScript to dist/, then the browser bundles and the web page's data). tsc is incremental, so a
#    second run is quick.
say "building"
npm run build --silent

# 4. For the tests: Debian's chromium-headless-shell, the real browser the page is tested in (WebGPU on its
#    bundled SwiftShader), whose package also brings SwiftShader's Vulkan driver, the second software adapter the
#    kernel tests run on. WEBGPU_NN_CHROMIUM and WEBGPU_NN_SWIFTSHADER_ICD may name others instead.
chromium=${WEBGPU_NN_CHROMIUM:-/usr/bin/chromium-headless-shell}
swiftshader=${WEBGPU_NN_SWIFTSHADER_ICD:-/usr/lib/chromium/vk_swiftshader_icd.json}
if [[ ! -x $chromium || ! -f $swiftshader ]]; then
  say "installing chromium-headless-shell (the browser tests' Chromium and SwiftShader's Vulkan driver)"
  [[ -r /etc/os-release ]] && . /etc/os-release
  [[ $(id -u) == 0 && "${ID:-}" == debian ]] || die "the tests need Chromium's headless shell and SwiftShader's Vulkan driver: on Debian run
  apt-get update && apt-get install -y chromium-headless-shell
as root (elsewhere, set WEBGPU_NN_CHROMIUM to a Chromium binary and WEBGPU_NN_SWIFTSHADER_ICD to a vk_swiftshader_icd.json)."
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq chromium-headless-shell >&2
fi

# 5. A WebGPU adapter. probe-adapter prints one line describing it, or exits 1 when there is none.
probe() { node scripts/probe-adapter.mjs 2>/dev/null; }
if desc=$(probe); then
  say "adapter: $desc"
  exit 0
fi

say "no WebGPU adapter found; installing Mesa's software Vulkan driver (lavapipe)"
need="Install a Vulkan driver and loader that Dawn accepts: on Debian 12 that is
  echo 'deb http://deb.debian.org/debian bookworm-backports main' > /etc/apt/sources.list.d/bookworm-backports.list
  apt-get update && apt-get install -y -t bookworm-backports mesa-vulkan-drivers libvulkan1
(Mesa 25 or newer; Debian 12's own Mesa 22.3 lacks features Dawn requires). With a GPU, install its vendor's Vulkan driver instead."
[[ $(id -u) == 0 ]] || die "not running as root, so cannot install packages.
$need"
[[ -r /etc/os-release ]] && . /etc/os-release
[[ "${ID:-}" == debian && "${VERSION_CODENAME:-}" == bookworm ]] || die "this is not Debian 12 (bookworm), so the automatic install does not apply.
$need"

list=/etc/apt/sources.list.d/bookworm-backports.list
if ! grep -rqs '^deb .*bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/ \
   && ! grep -rqs 'Suites:.*bookworm-backports' /etc/apt/sources.list.d/; then
  echo 'deb http://deb.debian.org/debian bookworm-backports main' > "$list"
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq -t bookworm-backports mesa-vulkan-drivers libvulkan1 >&2

desc=$(probe) || die "Mesa's lavapipe is installed but Dawn still finds no adapter.
Run 'node scripts/probe-adapter.mjs' to see Dawn's own message."
say "adapter: $desc"
