# Shared by the benchmark commands: start chainfire, etcd and flaredb clusters on loopback with
# TLS (mutual between peers), wait until they serve, stop them. Expects BIN (optimised
# binaries), WORK (a scratch dir), CERT, KEY and CA to be set, and appends to PIDS.
PIDS=()

start_chainfire() { # members [port base, default 3237]
  local n=$1 base=${2:-3237} peers="" i
  for i in $(seq 1 "$n"); do peers+="${peers:+,}$i=127.0.0.1:$((base + 1))$i"; done
  for i in $(seq 1 "$n"); do
    CHAINFIRE_RAFT_PEER_CA="$CA" "$BIN/chainfire-server" --data-dir "$WORK/cf$base-$n-$i" --tls-cert "$CERT" --tls-key "$KEY" \
      --listen "127.0.0.1:$base$i" --node-id "$i" --raft-listen "127.0.0.1:$((base + 1))$i" --initial-peers "$peers" \
      --log-level warn > "$WORK/cf$base-$n-$i.log" 2>&1 &
    PIDS+=($!)
  done
  ENDPOINTS=$(seq -s, -f "https://127.0.0.1:$base%g" 1 "$n")
}

start_etcd() { # members
  local n=$1 cluster="" i
  for i in $(seq 1 "$n"); do cluster+="${cluster:+,}e$i=https://127.0.0.1:3248$i"; done
  for i in $(seq 1 "$n"); do
    etcd --name "e$i" --data-dir "$WORK/etcd$n-$i" \
      --listen-client-urls "https://127.0.0.1:3247$i" --advertise-client-urls "https://127.0.0.1:3247$i" \
      --listen-peer-urls "https://127.0.0.1:3248$i" --initial-advertise-peer-urls "https://127.0.0.1:3248$i" \
      --initial-cluster "$cluster" --initial-cluster-state new \
      --cert-file "$CERT" --key-file "$KEY" --peer-cert-file "$CERT" --peer-key-file "$KEY" \
      --peer-trusted-ca-file "$CA" --peer-client-cert-auth --log-level warn > "$WORK/etcd$n-$i.log" 2>&1 &
    PIDS+=($!)
  done
  ENDPOINTS=$(seq -s, -f "https://127.0.0.1:3247%g" 1 "$n")
}

start_flaredb() { # stores chainfire-url
  local n=$1 chainfire=$2 peers="" i
  for i in $(seq 1 "$n"); do peers+="${peers:+,}$i=127.0.0.1:3258$i"; done
  for i in $(seq 1 "$n"); do
    FLAREDB_RAFT_PEER_CA="$CA" FLAREDB_CHAINFIRE_CA="$CA" "$BIN/flaredb-server" --data-dir "$WORK/fl$n-$i" \
      --tls-cert "$CERT" --tls-key "$KEY" --listen "127.0.0.1:3257$i" --node-id "$i" \
      --raft-listen "127.0.0.1:3258$i" --initial-peers "$peers" --chainfire "$chainfire" \
      --log-level warn > "$WORK/fl$n-$i.log" 2>&1 &
    PIDS+=($!)
  done
  ENDPOINTS=$(seq -s, -f "https://127.0.0.1:3257%g" 1 "$n")
}

start_iam() { # flaredb-url password-file
  IAM_FLAREDB_CA="$CA" "$BIN/iam-server" --data-dir "$WORK/iam" --tls-cert "$CERT" --tls-key "$KEY" \
    --listen 127.0.0.1:32680 --flaredb "$1" --admin-password-file "$2" --log-level warn > "$WORK/iam.log" 2>&1 &
  PIDS+=($!)
  ENDPOINTS=https://127.0.0.1:32680
}

wait_ready() { # a curl-able /health on every endpoint, or an etcdctl write
  for _ in $(seq 1 150); do
    if [ "${1:-}" = flaredb ]; then
      local ok=1 e
      for e in ${ENDPOINTS//,/ }; do curl -sf --cacert "$CA" "$e/health" > /dev/null || ok=0; done
      [ $ok = 1 ] && return 0
    elif ETCDCTL_API=3 etcdctl --endpoints="$ENDPOINTS" --cacert="$CA" put bench-ready 1 > /dev/null 2>&1; then
      return 0
    fi
    sleep 0.2
  done
  echo "bench: $ENDPOINTS never became ready" >&2; exit 1
}

stop_all() { # the processes in PIDS only (others, like flaredb's chainfire, keep running)
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  PIDS=()
}
