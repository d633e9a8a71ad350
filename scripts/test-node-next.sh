#!/usr/bin/env bash
# What of the proxy runs on the Node releases after 20 (see README "Run it, test it"): the tests that
# load no native module (protocol, pipeline, config, policies, telemetry) under each version given
# (default: the versions in test/production/node-next.ts), with that version's official binary fetched
# from the npm registry. The server (uWebSockets.js) and the SQLite ledger (better-sqlite3) need builds
# for the new ABI first; test/production/artifact.test.ts checks the CLI says so in one line.
set -euo pipefail
cd "$(dirname "$0")/.."
versions=("$@")
if [ ${#versions[@]} -eq 0 ]; then
  mapfile -t versions < <(grep -oE "'[0-9]+\.[0-9]+\.[0-9]+'" test/production/node-next.ts | tr -d "'")
fi
status=0
for v in "${versions[@]}"; do
  node_bin=$(npx tsx -e "import { nextNode } from './test/production/node-next.ts'; console.log(nextNode('$v'))")
  echo "== Node $("$node_bin" -v): native-free tests"
  PATH="$(dirname "$node_bin"):$PATH" node node_modules/vitest/vitest.mjs run src/protocol src/pipeline src/config src/policies src/telemetry || status=1
done
exit $status
