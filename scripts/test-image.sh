#!/usr/bin/env bash
# Image smoke test (npm run test:image): builds the unmodified Dockerfile with podman and runs the
# built image's filesystem as its USER, as a container runtime would, then checks /healthz, /readyz,
# one simulator turn through the proxy, the /data volume and a clean SIGTERM exit.
#
# Made for a machine without a Docker engine or registry access (this CI machine), as root:
#  - the base image node:20.20.2-bookworm-slim is built locally: debootstrap minbase bookworm plus this
#    machine's node, npm, Node headers (node-gyp builds better-sqlite3 offline) and CA bundle;
#  - `podman run` cannot start containers here (crun: setrlimit RLIMIT_NPROC: Operation not permitted),
#    so the image is mounted (`podman image mount`) and its entrypoint runs in a chroot with its
#    Env, WorkingDir, Entrypoint, Cmd and User, with /proc, /dev, a tmpfs /tmp and a fresh /data volume
#    (a copy of the image's /data, as a runtime initialises a new volume) mounted in a private mount
#    namespace. Not covered: the runtime's own isolation (network/pid namespaces, cgroups, seccomp).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BASE=node:20.20.2-bookworm-slim
IMAGE=localhost/realtime-governance-proxy:smoke
export DEBIAN_FRONTEND=noninteractive

log() { printf '\n==> %s\n' "$*"; }
[ "$(id -u)" = 0 ] || { echo "test-image: run as root (podman image mount, chroot)" >&2; exit 1; }

need=()
command -v podman >/dev/null || need+=(podman)
command -v debootstrap >/dev/null || need+=(debootstrap)
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]}"
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
PODMAN=(podman --cgroup-manager=cgroupfs)

work=$(mktemp -d /tmp/rp-image-XXXXXX)
mnt=""
cleanup() {
  set +e
  if [ -n "${proxy_pid:-}" ] && kill -0 "$proxy_pid" 2>/dev/null; then kill -KILL "$proxy_pid"; fi
  [ -n "$mnt" ] && "${PODMAN[@]}" image unmount "$IMAGE" >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT

# ---- 1. the base image, built locally (no registry) ----
if ! "${PODMAN[@]}" image exists "$BASE"; then
  log "building base image $BASE (debootstrap minbase bookworm + this machine's node $(node -v))"
  start=$SECONDS
  rootfs="$work/rootfs"
  mirror=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n1)
  debootstrap --variant=minbase bookworm "$rootfs" "${mirror:-http://deb.debian.org/debian}" >"$work/debootstrap.log" 2>&1 \
    || { tail -n 20 "$work/debootstrap.log"; exit 1; }
  # As in the official image: node in /usr/local/bin, npm in /usr/local/lib/node_modules, headers in /usr/local/include/node.
  install -m 0755 "$(command -v node)" "$rootfs/usr/local/bin/node"
  mkdir -p "$rootfs/usr/local/lib/node_modules" "$rootfs/usr/local/include" "$rootfs/usr/local/etc"
  cp -a /usr/lib/node_modules/npm "$rootfs/usr/local/lib/node_modules/npm"
  ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$rootfs/usr/local/bin/npm"
  ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$rootfs/usr/local/bin/npx"
  cp -a /usr/include/node "$rootfs/usr/local/include/node"
  mkdir -p "$rootfs/etc/ssl/certs"
  cp -L /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
  printf 'cafile=/etc/ssl/certs/ca-certificates.crt\nnodedir=/usr/local\n' >"$rootfs/usr/local/etc/npmrc"
  [ -f /etc/apt/sources.list.d/debian.sources ] && cp /etc/apt/sources.list.d/debian.sources "$rootfs/etc/apt/sources.list.d/debian.sources" && rm -f "$rootfs/etc/apt/sources.list"
  chroot "$rootfs" /bin/sh -c 'groupadd --gid 1000 node && useradd --uid 1000 --gid node --shell /bin/bash --create-home node'
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -c . | "${PODMAN[@]}" import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' --change 'CMD ["node"]' - "$BASE" >/dev/null
  rm -rf "$rootfs"
  echo "base image built in $((SECONDS - start)) s"
fi

# ---- 2. the image, from the unmodified Dockerfile ----
log "podman build (Dockerfile as committed)"
start=$SECONDS
"${PODMAN[@]}" build --network=host --isolation=chroot --pull=never -t "$IMAGE" . >"$work/build.log" 2>&1 \
  || { tail -n 40 "$work/build.log"; exit 1; }
echo "image built in $((SECONDS - start)) s"
size=$("${PODMAN[@]}" image inspect --format '{{.Size}}' "$IMAGE")
base_size=$("${PODMAN[@]}" image inspect --format '{{.Size}}' "$BASE")
printf 'image size: %s MB (base %s MB, proxy layers %s MB)\n' $((size / 1000000)) $((base_size / 1000000)) $(((size - base_size) / 1000000))

# ---- 3. what is in it ----
mnt=$("${PODMAN[@]}" image mount "$IMAGE")
cfg() { "${PODMAN[@]}" image inspect --format "$1" "$IMAGE"; }
user=$(cfg '{{.Config.User}}')
workdir=$(cfg '{{.Config.WorkingDir}}')
volumes=$(cfg '{{range $k, $v := .Config.Volumes}}{{$k}} {{end}}')
log "image contents (USER $user, WORKDIR $workdir, VOLUME $volumes)"
fail() { echo "FAIL: $*" >&2; exit 1; }
[ "$volumes" = "/data " ] || fail "the image declares volumes '$volumes', expected /data"
[ ! -e "$mnt/app/node_modules/tsx" ] || fail "tsx is in the image"
[ ! -e "$mnt/app/node_modules/typescript" ] || fail "typescript is in the image"
[ ! -e "$mnt/app/src" ] || fail "TypeScript sources are in the image"
[ ! -e "$mnt/app/test" ] || fail "tests are in the image"
if find "$mnt/app" -name '*.sqlite*' | grep -q .; then fail "a SQLite file was baked into the image"; fi
binaries=$(find "$mnt/app/node_modules/uWebSockets.js" -name 'uws_*.node' -printf '%f\n')
[ "$binaries" = "uws_linux_$(node -p process.arch)_$(node -p process.versions.modules).node" ] || fail "uWS binaries in the image: $binaries"
echo "uWS binaries: $binaries; node_modules $(du -sm "$mnt/app/node_modules" | cut -f1) MB; no tsx, typescript, src, tests, sqlite files"
uid=$(awk -F: -v u="$user" '$1 == u { print $3 }' "$mnt/etc/passwd")
gid=$(awk -F: -v u="$user" '$1 == u { print $4 }' "$mnt/etc/passwd")
[ -n "$uid" ] && [ "$uid" != 0 ] || fail "USER $user is not a non-root user of the image"
[ "$(stat -c %u "$mnt/data")" = "$uid" ] || fail "/data is not owned by $user"

# ---- 4. run the image's entrypoint as its USER ----
log "running the image as $user ($uid:$gid) in a chroot"
# A new volume starts as a copy of the image's /data (ownership included), as docker/podman do.
cp -a "$mnt/data" "$work/data"
port=$(node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})")
tenant_key="rpk_image_smoke_$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
tenant_sha=$(printf %s "$tenant_key" | sha256sum | cut -d' ' -f1)
# The container's argv and environment, from the image config.
node -e '
  const [inspect] = JSON.parse(require("fs").readFileSync(0, "utf8"));
  const c = inspect.Config;
  process.stdout.write([...(c.Entrypoint || []), ...(c.Cmd || [])].join("\0") + "\n");
  process.stdout.write((c.Env || []).join("\0") + "\n");
' < <("${PODMAN[@]}" image inspect "$IMAGE") >"$work/config"
mapfile -d '' -t argv < <(sed -n 1p "$work/config" | tr -d '\n')
mapfile -d '' -t image_env < <(sed -n 2p "$work/config" | tr -d '\n')
run_env=("${image_env[@]}" HOME=/home/node PORT="$port" HOST=127.0.0.1 UPSTREAM_PROVIDER=simulator TENANT_KEY_SHA256="$tenant_sha" SHUTDOWN_DRAIN_SEC=2)
echo "argv: ${argv[*]}"
# A private mount namespace: /proc, /dev, /tmp and /data exist only for this process tree.
unshare --mount --propagation private -- /bin/sh -c '
  mnt=$1; data=$2; shift 2
  mount -t proc proc "$mnt/proc" && mount --rbind /dev "$mnt/dev" && mount -t tmpfs tmpfs "$mnt/tmp" && mount --bind "$data" "$mnt/data"
  exec "$@"
' sh "$mnt" "$work/data" \
  chroot --userspec="$uid:$gid" "$mnt" /usr/bin/env -i "${run_env[@]}" /bin/sh -c 'cd "$0" && exec "$@"' "$workdir" "${argv[@]}" \
  >"$work/proxy.log" 2>&1 &
proxy_pid=$!

for _ in $(seq 1 100); do
  grep -q 'realtime proxy listening' "$work/proxy.log" && break
  kill -0 "$proxy_pid" 2>/dev/null || { cat "$work/proxy.log"; fail "the proxy exited at startup"; }
  sleep 0.1
done
grep -q 'realtime proxy listening' "$work/proxy.log" || { cat "$work/proxy.log"; fail "the proxy did not listen within 10 s"; }
health=$(node -e "fetch('http://127.0.0.1:$port/healthz').then(r=>r.text()).then(t=>console.log(t))")
ready=$(node -e "fetch('http://127.0.0.1:$port/readyz').then(async r=>console.log(r.status, await r.text()))")
echo "/healthz: $health"
echo "/readyz:  $ready"
case "$health" in *'"status":"ok"'*'native uws_linux'*) ;; *) fail "/healthz: $health" ;; esac
case "$ready" in '200 '*'"upstream":"simulator"'*) ;; *) fail "/readyz: $ready" ;; esac

log "one turn through the image's proxy (realtime-proxy talk from this checkout)"
node "$ROOT/bin/realtime-proxy.mjs" talk --url "ws://127.0.0.1:$port/v1/realtime" --key "$tenant_key" \
  --say "Hello from the container image." --out "$work/answer.wav" | tee "$work/talk.log"
grep -q 'proxy: Hello from the container image.' "$work/talk.log" || fail "the turn did not come back"
[ "$(stat -c %s "$work/answer.wav")" -gt 48044 ] || fail "less than a second of audio"

[ -f "$work/data/metering.sqlite" ] || fail "no ledger in /data"
[ "$(stat -c %u "$work/data/metering.sqlite")" = "$uid" ] || fail "the ledger is not owned by $user"
echo "/data: $(ls "$work/data" | tr '\n' ' ')(owned by $user)"

log "SIGTERM"
kill -TERM "$proxy_pid"
code=0
wait "$proxy_pid" || code=$?
[ "$code" = 0 ] || { tail -n 5 "$work/proxy.log"; fail "exit code $code after SIGTERM"; }
proxy_pid=""
echo "exited 0"
log "a config whose data path the user cannot write fails check-config with a clear message"
# config/example.yaml keeps its ledger next to the config file (/app/config/.data), which the
# image's user cannot create: the mistake the image used to die on with EACCES at startup.
set +e
unshare --mount --propagation private -- /bin/sh -c '
  mnt=$1; shift
  mount -t proc proc "$mnt/proc" && mount --rbind /dev "$mnt/dev" && mount -t tmpfs tmpfs "$mnt/tmp"
  exec "$@"
' sh "$mnt" \
  chroot --userspec="$uid:$gid" "$mnt" /usr/bin/env -i "${image_env[@]}" HOME=/home/node /bin/sh -c 'cd "$0" && exec node dist/cli.js check-config --config /app/config/example.yaml' "$workdir" \
  >"$work/check.log" 2>&1
code=$?
set -e
cat "$work/check.log"
[ "$code" = 1 ] || fail "check-config exited $code"
grep -q 'metering.ledger.path: /app/config is not writable by this user' "$work/check.log" || fail "no clear message for the unwritable data path"
grep -q '    at ' "$work/check.log" && fail "a stack trace was printed"

printf '\nimage smoke test passed: %s, %s MB\n' "$IMAGE" $((size / 1000000))
