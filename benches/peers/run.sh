#!/usr/bin/env bash
# The MNIST MLP (784-128-64-10, Adam 1e-3, batch 32, 48k train / 12k validation, 5 epochs)
# trained in dnnc and in its peers in ONE run, then a table: seconds per epoch (median of
# epochs 2-5), test accuracy, the ratio to the fastest peer, batch-1 latency and batch-1000
# throughput, plus dnnc's compile time and peak RSS.
#
#   benches/peers/run.sh [--setup] [--data DIR] [--epochs N] [--skip-peers] [--bench mlp|cnn|cifar|lstm] [--threads N] [--rounds N]
#
# --bench cnn    the MNIST CNN instead (peers' B2: Conv2D 32 3x3 relu, MaxPool 2, Dense 128
#                relu, Dense 10; Adam 1e-3, batch 32, 2 epochs on all 60k images):
#                `dnnc run examples/mnist_cnn.dnn` against the peers' B2.
# --bench cifar  the CIFAR-10 CNN on the peers' CIFAR-shaped stand-in (peers' B3 with
#                --synthetic-cifar, batch 32, 2 epochs on 50k images): the stand-in is written
#                to disk in the CIFAR binary format first (write_cifar_proxy.py, the peers' own
#                construction), then `dnnc run benches/peers/cifar_b3.dnn` trains on it.
# --bench lstm runs the IMDB LSTM instead (Embedding 5000x128, LSTM 64, Dense 1 sigmoid; Adam
#              1e-3, batch 32, length 100, 2 epochs): dnnc's examples/imdb_report.rs and the
#              peers' B4 (one epoch plus one warm epoch each; PyTorch eager and torch.compile),
#              then a table of the steady epoch time and the test accuracy after 2 epochs.
# --threads N  threads dnnc's compiled step may use (default: dnnc's own, one per core).
# --rounds N   (mlp, cnn, cifar) runs every framework N times, interleaved: dnnc, then each
#              peer, then dnnc again... On a shared host whose speed drifts by up to 2x within
#              minutes, one run each compares frameworks measured at different speeds; the
#              table then also gives dnnc's ratio to the fastest peer of each round, and the
#              median of those ratios (default 1).
#
# Before each framework the script waits for the CPU to be quiet and prints a host probe
# (cache_probe.rs): the latency of the L3 the host shares with other tenants, and the speed
# of the core itself; the table gives the probe taken before dnnc in each round.
#
# --setup      creates the peers' virtual environment from PyPI first (a few GB; never in CI):
#              $PEERS_VENV, default ~/.cache/dnnc/peers-venv. PyTorch comes from its CPU wheel
#              index when that answers, else from PyPI.
# --data DIR   the data root holding mnist/ (default /work/shared/data).
# The peer scripts are run from $PEERS_DIR (default /work/shared/peers), not copied.
# Results accumulate in $OUT (default target/peers/results.jsonl, emptied first), each
# line tagged with its round.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DATA=/work/shared/data
EPOCHS=
BENCH=mlp
SETUP=0
SKIP_PEERS=0
THREADS=
ROUNDS=1
PEERS_DIR=${PEERS_DIR:-/work/shared/peers}
VENV=${PEERS_VENV:-$HOME/.cache/dnnc/peers-venv}
OUT=${OUT:-$ROOT/target/peers/results.jsonl}
while [ $# -gt 0 ]; do
  case $1 in
    --setup) SETUP=1 ;;
    --data) DATA=$2; shift ;;
    --epochs) EPOCHS=$2; shift ;;
    --skip-peers) SKIP_PEERS=1 ;;
    --bench) BENCH=$2; shift ;;
    --threads) THREADS=$2; shift ;;
    --rounds) ROUNDS=$2; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
case $BENCH in
  mlp) EPOCHS=${EPOCHS:-5} ;;
  cnn|cifar|lstm) EPOCHS=${EPOCHS:-2} ;;
  *) echo "unknown bench $BENCH (mlp, cnn, cifar or lstm)" >&2; exit 2 ;;
esac
mkdir -p "$(dirname "$OUT")"
: > "$OUT"
# The host probe (cache_probe.rs), built once; nothing is probed without rustc.
PROBE="$ROOT/target/peers/cache_probe"
rustc -O -C target-cpu=native --edition 2021 "$ROOT/benches/peers/cache_probe.rs" -o "$PROBE" 2>/dev/null || PROBE=
PROBES="$OUT.probes"
: > "$PROBES"
# Waits (at most $QUIET_WAIT s) for other processes to leave the CPU before each framework,
# then prints the host probe and keeps it (with the round and what runs next) for the table.
quiet() {
  python3 "$PEERS_DIR/wait_quiet.py" --max-wait "${QUIET_WAIT:-120}" 2>/dev/null | tail -1
  if [ -n "$PROBE" ]; then
    local l3 core
    read -r l3 core < <("$PROBE")
    echo "[host probe] random loads over 2 MiB: $l3 ns (12-25 when the host's L3 is quiet); core pass: $core ns"
    echo "${round:-1} ${1:-} $l3 $core" >> "$PROBES"
  fi
}

if [ "$SETUP" = 1 ]; then
  python3 -m venv "$VENV" || exit 1
  "$VENV/bin/pip" install --upgrade pip numpy
  "$VENV/bin/pip" install torch --index-url https://download.pytorch.org/whl/cpu || "$VENV/bin/pip" install torch
  "$VENV/bin/pip" install keras jax tensorflow-cpu || exit 1
fi

if [ "$BENCH" = lstm ]; then
  echo "=== dnnc (JIT), IMDB LSTM"
  (cd "$ROOT" && cargo build --release --example imdb_report 2>&1 | tail -1)
  quiet
  (cd "$ROOT" && /usr/bin/time -f "dnnc max RSS %M KiB" target/release/examples/imdb_report --data "$DATA" --epochs 2 ${THREADS:+--threads "$THREADS"}) \
    2>&1 | tee /dev/stderr | grep '^RESULT ' | sed 's/^RESULT //' >> "$OUT"
  PY="$VENV/bin/python"
  if [ "$SKIP_PEERS" = 0 ] && [ -x "$PY" ]; then
    for peer in "keras_bench.py --backend jax" "keras_bench.py --backend tensorflow" "torch_bench.py" "torch_bench.py --compile"; do
      quiet
      echo "=== $peer"
      # shellcheck disable=SC2086
      "$PY" "$PEERS_DIR/"$peer --bench B4 --epochs 1 --data "$DATA" --out "$OUT" --tag side-by-side 2>&1 \
        | grep -vE "oneDNN custom operations|absl::InitializeLog|^\s*$" | tail -3
    done
  fi
  echo "load average after the run: $(cut -d' ' -f1-3 /proc/loadavg)"
  python3 - "$OUT" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
peers = [r["median_epoch_s_excl_first"] for r in rows if not r["framework"].startswith("dnnc")]
fastest = min(peers) if peers else None
print()
print("| framework | s/epoch (warm) | vs fastest peer | test acc after 2 epochs | test acc after 1 | other processes' CPU share |")
print("|---|---:|---:|---:|---:|---:|")
for r in rows:
    s = r["median_epoch_s_excl_first"]
    ratio = f"{s / fastest:.2f}x" if fastest else "-"
    acc2 = r.get("test_acc_after_extra_epoch", r["test_acc"])
    acc1 = r["test_acc"] if "test_acc_after_extra_epoch" in r else None
    acc1 = f"{acc1:.4f}" if acc1 is not None else "-"
    share = r.get("other_procs_cpu_share")
    share = f"{share:.2f}" if isinstance(share, (int, float)) else "-"
    print(f"| {r['framework']} | {s:.2f} | {ratio} | {acc2:.4f} | {acc1} | {share} |")
for r in rows:
    if "peak_rss_mib" in r:
        print(f"\n{r['framework']}: epochs {r['epoch_s']} s, peak RSS {r['peak_rss_mib']:.0f} MiB")
PY
  exit 0
fi

# dnnc_cnn NAME FILE DATA: `dnnc run` of a CNN, one JSON line from its history and the
# test accuracy its evaluate block prints.
dnnc_cnn() {
  local hist="$ROOT/target/peers/dnnc-history.json" log="$ROOT/target/peers/dnnc-run.log"
  quiet
  (cd "$ROOT" && /usr/bin/time -f "dnnc max RSS %M KiB" target/release/dnnc run "$2" --data "$3" \
    --epochs "$EPOCHS" ${THREADS:+--threads "$THREADS"} --history "$hist") 2>&1 | tee "$log" >&2
  python3 - "$1" "$hist" "$log" >> "$ROUND_OUT" <<'PY'
import json, re, statistics, sys
name, hist, log = sys.argv[1:4]
h = json.load(open(hist))
records = h["records"] if isinstance(h, dict) else h
secs = [r["seconds"] for r in records]
steady = secs[1:] if len(secs) > 1 else secs
text = open(log).read()
acc = [float(a) for a in re.findall(r"accuracy: ([0-9.]+)", text.split("Evaluate")[-1])]
print(json.dumps({"framework": name, "epoch_s": [round(s, 3) for s in secs],
                  "median_epoch_s_excl_first": round(statistics.median(steady), 3),
                  "test_acc": acc[-1] if acc else float("nan")}))
PY
}

# one_round: dnnc, then each peer, all appending to $ROUND_OUT.
one_round() {
  PEER_ARGS=(--bench B1,B5)
  case $BENCH in
    mlp)
      echo "=== dnnc (JIT)"
      (cd "$ROOT" && cargo build --release --example mnist_report 2>&1 | tail -1)
      quiet dnnc
      (cd "$ROOT" && /usr/bin/time -f "dnnc max RSS %M KiB" target/release/examples/mnist_report --data "$DATA" --epochs "$EPOCHS" ${THREADS:+--threads "$THREADS"}) \
        2>&1 | tee /dev/stderr | grep '^RESULT ' | sed 's/^RESULT //' >> "$ROUND_OUT"
      ;;
    cnn)
      echo "=== dnnc (JIT): examples/mnist_cnn.dnn"
      (cd "$ROOT" && cargo build --release --bin dnnc 2>&1 | tail -1)
      dnnc_cnn "dnnc (jit, ${THREADS:-default} threads)" examples/mnist_cnn.dnn "$DATA"
      PEER_ARGS=(--bench B2)
      ;;
    cifar)
      echo "=== dnnc (JIT): benches/peers/cifar_b3.dnn on the peers' CIFAR-shaped stand-in"
      (cd "$ROOT" && cargo build --release --bin dnnc 2>&1 | tail -1)
      PROXY="$ROOT/target/peers/cifar-proxy"
      if [ ! -f "$PROXY/cifar10/test_batch.bin" ]; then
        "$VENV/bin/python" "$ROOT/benches/peers/write_cifar_proxy.py" "$PEERS_DIR" "$DATA" "$PROXY" || exit 1
      fi
      dnnc_cnn "dnnc (jit, ${THREADS:-default} threads)" benches/peers/cifar_b3.dnn "$PROXY"
      PEER_ARGS=(--bench B3 --synthetic-cifar)
      ;;
  esac

  if [ "$SKIP_PEERS" = 0 ]; then
    PY="$VENV/bin/python"
    if [ ! -x "$PY" ]; then
      echo "no peer environment at $VENV: run with --setup once (or --skip-peers)" >&2
    else
      run_peer() {  # run_peer SCRIPT ARGS...
        quiet
        echo "=== $*"
        "$PY" "$PEERS_DIR/$1" "${@:2}" "${PEER_ARGS[@]}" --epochs "$EPOCHS" --data "$DATA" --out "$ROUND_OUT" --tag side-by-side 2>&1 \
          | grep -vE "oneDNN custom operations|absl::InitializeLog|^\s*$" | tail -3
      }
      run_peer keras_bench.py --backend jax
      run_peer keras_bench.py --backend tensorflow
      run_peer torch_bench.py
    fi
  fi
}

ROUND_OUT="$OUT.round"
for round in $(seq 1 "$ROUNDS"); do
  [ "$ROUNDS" -gt 1 ] && echo "##### round $round of $ROUNDS"
  : > "$ROUND_OUT"
  one_round
  python3 -c '
import json, sys
for l in open(sys.argv[1]):
    if l.strip():
        r = json.loads(l); r["round"] = int(sys.argv[2]); print(json.dumps(r))' "$ROUND_OUT" "$round" >> "$OUT"
done
rm -f "$ROUND_OUT"

python3 - "$OUT" "$PROBES" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
probes = {}
for line in open(sys.argv[2]):
    parts = line.split()
    if len(parts) == 4 and parts[1] == "dnnc":
        probes[int(parts[0])] = (float(parts[2]), float(parts[3]))
# Per framework, one training row and one inference row per round.
train, infer = {}, {}
for r in rows:
    fw, rnd = r["framework"], r.get("round", 1)
    if r.get("bench", "B1").startswith("B5"):
        infer.setdefault(fw, {})[rnd] = r
    else:
        train.setdefault(fw, {})[rnd] = r
        if "b1_median_latency_us" in r:
            infer.setdefault(fw, {})[rnd] = r
med = statistics.median
epoch = lambda r: r["median_epoch_s_excl_first"]
peers = [fw for fw in train if not fw.startswith("dnnc")]
rounds = sorted({rnd for runs in train.values() for rnd in runs})
fastest = min((med([epoch(r) for r in train[fw].values()]) for fw in peers), default=None)
print()
print("| framework | s/epoch (median excl. epoch 1) | vs fastest peer | test acc | batch-1 latency | batch-1000 samples/s |")
print("|---|---:|---:|---:|---:|---:|")
def latency_us(i):
    if "b1_median_latency_us" in i:
        return i["b1_median_latency_us"]
    return i["b1_median_latency_ms"] * 1000 if "b1_median_latency_ms" in i else None
for fw, runs in train.items():
    s = med([epoch(r) for r in runs.values()])
    ratio = f"{s / fastest:.2f}x" if fastest else "-"
    acc = med([r["test_acc"] for r in runs.values()])
    inf = list(infer.get(fw, {}).values())
    lats = [x for x in map(latency_us, inf) if x is not None]
    lat = f"{med(lats):.2f} us" if lats else "-"
    thrs = [i["b1000_samples_per_s"] for i in inf if i.get("b1000_samples_per_s")]
    thr = f"{med(thrs):,.0f}" if thrs else "-"
    print(f"| {fw} | {s:.3f} | {ratio} | {acc:.4f} | {lat} | {thr} |")
if len(rounds) > 1:
    print(f"\nMedians over {len(rounds)} interleaved rounds. Per round:")
    for fw, runs in train.items():
        print(f"  {fw}: s/epoch " + " ".join(f"{epoch(runs[k]):.3f}" if k in runs else "-" for k in rounds))
    for fw in (fw for fw in train if fw.startswith("dnnc")):
        ratios = []
        for k in rounds:
            here = [epoch(train[p][k]) for p in peers if k in train[p]]
            if k in train[fw] and here:
                ratios.append(epoch(train[fw][k]) / min(here))
        if ratios:
            print(f"  {fw} / the round's fastest peer: " + " ".join(f"{x:.2f}x" for x in ratios)
                  + f"; median {med(ratios):.2f}x")
    if probes:
        print("  host probe just before dnnc, L3 load / core pass (ns): "
              + " ".join(f"{probes[k][0]:.0f}/{probes[k][1]:.0f}" if k in probes else "-" for k in rounds))
for fw, runs in train.items():
    for k, r in sorted(runs.items()):
        if "compile_ms" in r:
            print(f"\n{fw}, round {k}: compile .dnn -> native {r['compile_ms']:.1f} ms (front end {r['front_end_ms']:.1f} ms), "
                  f"peak RSS {r['peak_rss_mib']:.0f} MiB, epochs {r['epoch_s']}")
PY
