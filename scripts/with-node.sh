#!/bin/sh
# Runs node with the project's pinned Node 24 (fetched from the npm registry on first use),
# so that `npm test` and `npm run demo` work whatever node is installed.
set -e
. "$(dirname "$0")/node-env.sh"
exec node --disable-warning=DEP0060 "$@"
