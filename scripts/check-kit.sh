# Sourced by scripts/runtime-check.sh and scripts/image-check.sh: the checks both make
# on a running sidecar, whichever way it runs. Expects NODE_BIN (Node 24), WORK (a
# scratch folder), functions say and fail, and CURL (an array: the curl command, maybe
# run inside a network namespace; default plain curl).
# shellcheck shell=bash
# Single-quoted node -e programs are expanded by node:
# shellcheck disable=SC2016

# relay_signed_webhook RELAY_URL RECORD_FILE SOURCE: POSTs one signed GitHub-style webhook
# (non-ASCII bytes in its body) to the relay and checks that the downstream, recording
# into RECORD_FILE (scripts/check-peers.mjs), got it byte for byte with its signature and
# event headers, and that the downstream's answer came back.
relay_signed_webhook() {
  local relay=$1 record=$2 source=$3
  local curl=("${CURL[@]:-curl}")
  local PAYLOAD="$WORK/payload.json" SIGNATURE STATUS
  printf '{"action":"opened","number":7,"pull_request":{"title":"caf\xc3\xa9 \\u00e9 %s"},"zen":"Keep it logically awesome."}\n' "$source" >"$PAYLOAD"
  SIGNATURE="sha256=$("$NODE_BIN" -e '
    const { createHmac } = require("node:crypto");
    process.stdout.write(createHmac("sha256", "check-kit").update(require("node:fs").readFileSync(process.argv[1])).digest("hex"));' "$PAYLOAD")"
  STATUS=$("${curl[@]}" -sS -o "$WORK/relay-response" -w '%{http_code}' --max-time 10 \
    -H 'Content-Type: application/json' -H 'X-GitHub-Event: pull_request' \
    -H 'X-GitHub-Delivery: 7c0b6d2e-check-kit' -H "X-Hub-Signature-256: $SIGNATURE" \
    --data-binary "@$PAYLOAD" "$relay/?source=$source") || fail "curl could not reach the relay at $relay"
  [ "$STATUS" = 200 ] || fail "the relay answered $STATUS instead of the downstream's 200: $(cat "$WORK/relay-response")"
  grep -q '"received":true' "$WORK/relay-response" || fail "the downstream's answer did not come back: $(cat "$WORK/relay-response")"
  [ -s "$record" ] || fail "the downstream received nothing"
  "$NODE_BIN" -e '
    const [file, sha256, signature, source] = process.argv.slice(1);
    const path = `/webhook/?source=${source}`;
    const got = require("node:fs").readFileSync(file, "utf8").trim().split("\n").map((l) => JSON.parse(l));
    if (got.length !== 1) throw new Error(`downstream got ${got.length} requests, expected 1`);
    const r = got[0];
    const problems = [];
    if (r.method !== "POST") problems.push(`method ${r.method}`);
    if (r.url !== path) problems.push(`path ${r.url}, expected ${path}`);
    if (r.sha256 !== sha256) problems.push("the body changed on the way");
    if (r.headers["x-hub-signature-256"] !== signature) problems.push("X-Hub-Signature-256 changed");
    if (r.headers["x-github-event"] !== "pull_request") problems.push("X-GitHub-Event missing");
    if (problems.length) throw new Error(problems.join("; "));
  ' "$record" "$(sha256sum "$PAYLOAD" | cut -d' ' -f1)" "$SIGNATURE" "$source" 2>"$WORK/check.err" ||
    fail "the relayed webhook is not what was sent: $(tail -n 1 "$WORK/check.err")"
  say "one signed webhook relayed byte for byte to the downstream"
}

# The downstream / channel stand-in's last lines, after a failure ($WORK/peers.log).
show_peers_log() {
  if [ -n "$WORK" ] && [ -s "$WORK/peers.log" ]; then
    echo '--- downstream / channel log ---' >&2
    tail -n 20 "$WORK/peers.log" >&2
  fi
}
