#!/usr/bin/env bash
# End-to-end latency at a steady 500 posts/s: wrk posts the JSON purchase order of
# ../shared/peers/http (a new document number each) at a paced rate to `esb run` on RabbitMQ, which
# validates, publishes confirmed, answers 202, consumes and POSTs to nginx answering 201. Prints
# wrk's POST->202 latency and, from the bus's journal, received->delivered per message (p50, p99).
# Run from the project root with its venv active; needs wrk and nginx-light.
#   RATE=500 DUR=20 bash bench/http/latency.sh
set -u
HERE=$(cd "$(dirname "$0")" && pwd); CHECKOUT=$(cd "$HERE/../.." && pwd)
PEERS=${ESB_HTTP_PEERS:-$CHECKOUT/../shared/peers/http}
RATE=${RATE:-500}; DUR=${DUR:-20}; CONNS=${CONNS:-$(( RATE * 62 / 1000 ))}; URL=${URL:-amqp://guest:guest@127.0.0.1:5672/%2F}
PORT=${PORT:-18492}; SINK_PORT=${SINK_PORT:-18493}
W=$(mktemp -d /tmp/esb-latency.XXXXXX); mkdir -p $W/sink/body
sed -e "s#/tmp/esb-sink-nginx#$W/sink#g" -e "s#127.0.0.1:18391#127.0.0.1:$SINK_PORT#" $PEERS/nginx-sink.conf > $W/nginx.conf
nginx -c $W/nginx.conf -p $W/sink || exit 1
trap 'kill $(cat $W/sink/nginx.pid) 2>/dev/null; [ -n "${PID:-}" ] && kill $PID 2>/dev/null; wait 2>/dev/null; rm -rf $W' EXIT
ROUTE=latency-$(date +%s)
cat > $W/routes.yaml <<YAML
version: 1
settings: {data_dir: $W/data}
systems:
  shop: {rest: {base_url: "http://127.0.0.1:9"}}
  sink: {rest: {base_url: "http://127.0.0.1:$SINK_PORT"}}
routes:
  - name: $ROUTE
    from: {rest: {system: shop, format: json}}
    validate: purchase_order
    to: [{rest: {system: sink, path: /orders}}]
YAML
export ESB_API_KEYS="bench:sender=*,admin:k" ESB_LOG_LEVEL=WARNING
esb run -c $W/routes.yaml --broker "$URL" --port $PORT > $W/esb.log 2>&1 & PID=$!
for _ in $(seq 60); do curl -fs http://127.0.0.1:$PORT/healthz >/dev/null && break; sleep 0.25; done
INTERVAL_MS=50  # wrk waits this long after each answer: CONNS / (0.05 s + latency) ≈ RATE; CONNS=$(( RATE * 62 / 1000 )) by default
echo "offered: $CONNS connections, each posting $INTERVAL_MS ms after its last answer (about $RATE/s) for $DUR s"
ORDER_FILE=$PEERS/order.json API_KEY=k INTERVAL_MS=$INTERVAL_MS wrk -t2 -c$CONNS -d${DUR}s -s $HERE/paced.lua \
  http://127.0.0.1:$PORT/in/$ROUTE 2>&1 | grep RESULT | sed 's/^/POST -> 202: /'
sleep 3  # the last deliveries, and the journal's writer (every 0.2 s)
python - "$W/data/journal.sqlite" <<'PY'
import sqlite3, sys
rows = sqlite3.connect(sys.argv[1]).execute(
    "SELECT message_id, step, at_epoch FROM esb_trace WHERE step IN ('received', 'delivered')").fetchall()
received, delivered = {}, {}
for message_id, step, at in rows:
    (received if step == "received" else delivered)[message_id] = at
spans = sorted(delivered[i] - received[i] for i in delivered if i in received)
if not spans:
    sys.exit("no message was delivered")
pick = lambda q: spans[min(len(spans) - 1, int(q * len(spans)))] * 1000
print(f"received -> delivered: {len(spans)} of {len(received)} messages, p50 {pick(0.5):.1f} ms, "
      f"p99 {pick(0.99):.1f} ms, max {spans[-1] * 1000:.1f} ms")
PY
python - "$URL" "$W/routes.yaml" <<'PY'
import sys, pika
from esb.config import load_config
from esb.transport.topology import Topology
connection = pika.BlockingConnection(pika.URLParameters(sys.argv[1])); channel = connection.channel()
for queue in Topology.from_config(load_config(sys.argv[2])).queues:
    channel.queue_delete(queue.name)
connection.close()
PY
