#!/bin/sh
# Seeds the corpora of the session and address targets with realistic transcripts: the
# captures in otedama-stratum/tests/data (copied from the shared captures directory), the
# examples of the NiceHash EthereumStratum/1.0.0 specification, and xmrig's payout address.
# Run from the repository root. The corpora are in .gitignore: they grow locally and are not
# committed. Each session seed is `<set-up byte><seed byte><transcript>` (see each target's
# header for what the two bytes choose).
set -eu

DATA=otedama-stratum/tests/data
XMRIG=$DATA/xmrig-rx0.txt
C=fuzz/corpus

# Lines one side sent in a capture: `client` (C->S) or `server` (S->C).
sent() {
    case $1 in client) dir='C->S' ;; *) dir='S->C' ;; esac
    sed -n "s/^ *[0-9.]* conn[0-9]* $dir //p" "$2"
}

# --- stratum_monero_pool_session: what xmrig sent, its session id being the allocator's
# first value. Set-up 0x30/0x31: four jobs stay valid, logged in by the stream or first.
T=$C/stratum_monero_pool_session
mkdir -p "$T"
{ printf '\060\007'; sent client "$XMRIG" | sed 's/"sess1"/"00000000"/g'; } > "$T/xmrig-login-and-submits"
{ printf '\061\011'; sent client "$XMRIG" | sed 's/"sess1"/"00000000"/g' | tail -n +2; } > "$T/xmrig-submits"
{
    printf '\061\003'
    sent client "$XMRIG" | sed 's/"sess1"/"00000000"/g' | sed -n 2,4p
    echo '{"id":20,"jsonrpc":"2.0","method":"keepalived","params":{"id":"00000000"}}'
    sent client "$XMRIG" | sed 's/"sess1"/"00000000"/g' | sed -n 2p
    echo '{"id":21,"jsonrpc":"2.0","method":"getjob","params":{}}'
} > "$T/xmrig-keepalived-duplicate"

# --- stratum_eth_pool_session: the specification's opening and submits (extranonce e00000).
T=$C/stratum_eth_pool_session
mkdir -p "$T"
{
    printf '\000\007'
    cat <<'EOF'
{"id": 1, "method": "mining.subscribe", "params": ["MinerName/1.0.0", "EthereumStratum/1.0.0"]}
{"id": 2, "method": "mining.authorize", "params": ["username", "password"]}
{"id": 3, "method": "mining.extranonce.subscribe", "params": []}
{"id": 4, "method": "eth_submitHashrate", "params": ["0x1", "0x2"]}
{"id": 244, "method": "mining.submit", "params": ["username", "j1", "6a909d9bbc"]}
EOF
} > "$T/nicehash-opening"
{
    printf '\063\011'
    cat <<'EOF'
{"id": 244, "method": "mining.submit", "params": ["username", "bf0488aa", "6a909d9bbc"]}
{"id": 245, "method": "mining.submit", "params": ["username", "bf0488aa", "6a909d9bbd"]}
{"id": 246, "method": "mining.submit", "params": ["username", "bf0488aa", "6a909d9bbd"]}
{"id":40,"jsonrpc":"2.0","method":"mining.submit","params":["username","bf0488aa","0xe00000d4e5f60718","0x0d1e2f3a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9012345678abcd","0xa9b4d4f2e7f5c7ac1a5d5b3e8d1ef0c0ce6e0b3e8d1a4c5f3b2e1d0c9b8a7f60"]}
{"id": 247, "method": "mining.submit", "params": ["other", "bf0488aa", "6a909d9bbe"]}
{"id": 248, "method": "mining.submit", "params": ["username", "nope", "6a909d9bbf"]}
{"id": null, "method": "mining.submit", "params": ["username", "bf0488aa", "0102"]}
EOF
} > "$T/nicehash-submits"

# --- stratum_v1_miner_session: what the scripted pool sent each captured miner, and a pool
# using every feature (version rolling, extranonce and mask changes, reconnects, errors).
T=$C/stratum_v1_miner_session
mkdir -p "$T"
for f in "$DATA"/minerd-*.txt "$DATA"/cpuminer-*.txt; do
    { printf '\000\007'; sent server "$f"; } > "$T/$(basename "$f" .txt)"
done
NOTIFY='{"id":null,"method":"mining.notify","params":["job1","0000000011111111111111111111111111111111111111111111111111111111","01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff1b03a086010e2f6f746564616d612d746573742f","ffffffff0100f2052a010000001976a914000000000000000000000000000000000000000088ac00000000",[],"20000000","1d00ffff","6b04e972",true]}'
NOTIFY2=$(printf '%s' "$NOTIFY" | sed 's/"job1","00000000111/"job2","00000000222/')
{
    printf '\077\005'
    cat <<EOF
{"id":1,"result":{"version-rolling":true,"version-rolling.mask":"1fffe000"},"error":null}
{"id":2,"result":[[["mining.set_difficulty","d1"],["mining.notify","n1"]],"08000002",4],"error":null}
{"id":3,"result":true,"error":null}
{"id":4,"result":true,"error":null}
{"id":5,"result":true,"error":null}
{"id":null,"method":"mining.set_difficulty","params":[0.001]}
$NOTIFY
{"id":null,"method":"mining.set_version_mask","params":["00006000"]}
{"id":null,"method":"mining.set_extranonce","params":["08000003",8]}
$NOTIFY2
{"id":6,"result":true,"error":null}
{"id":7,"result":null,"error":[23,"Low difficulty share",null]}
{"id":8,"result":false,"error":null,"reject-reason":"Stale"}
{"id":9,"method":"client.get_version","params":[]}
{"id":10,"method":"mining.ping","params":[]}
{"id":11,"method":"client.show_message","params":["hello"]}
{"id":null,"method":"client.reconnect","params":["POOL.example",3334,0]}
{"id":null,"method":"client.reconnect","params":["evil.example",3334,0]}
EOF
} > "$T/every-feature"
{
    printf '\010\003'
    cat <<EOF
{"id":1,"result":null,"error":[20,"unknown session",null]}
{"id":2,"result":null,"error":[25,"not subscribed",null]}
{"id":3,"result":[[["mining.notify","n2"]],"08000004",4],"error":null}
{"id":4,"result":true,"error":null}
$NOTIFY
EOF
} > "$T/refused-resume"

# --- stratum_monero_miner_session: what the scripted pool sent xmrig, more jobs and refusals.
T=$C/stratum_monero_miner_session
mkdir -p "$T"
{ printf '\000\007'; sent server "$XMRIG"; } > "$T/xmrig-rx0"
{
    printf '\005\003'
    sent server "$XMRIG" | head -n 1
    cat <<'EOF'
{"jsonrpc":"2.0","method":"job","params":{"blob":"1010e2bd93d806418015bb9ae982a1975da7d79277c2705727a56894ba0fb246adaabb1f4632e3000000002283a67870bd298fffd52723bcfb2da2008d6f0fbc679238021b2114d8b9f25f02","job_id":"job2","target":"ffffffff","algo":"rx/0","height":2,"seed_hash":"418015bb9ae982a1975da7d79277c2705727a56894ba0fb246adaabb1f4632e3"}}
{"id":2,"jsonrpc":"2.0","error":{"code":-1,"message":"Low difficulty share"},"result":null}
{"id":3,"jsonrpc":"2.0","error":"Stale share","result":null}
{"id":4,"jsonrpc":"2.0","error":null,"result":{"status":"KEEPALIVED"}}
{"jsonrpc":"2.0","method":"job","params":{"blob":"00","job_id":"bad","target":"ffffffff"}}
EOF
} > "$T/jobs-and-refusals"
{
    printf '\003\001'
    echo '{"id":1,"jsonrpc":"2.0","error":{"code":-1,"message":"invalid payout address"},"result":null}'
} > "$T/login-refused"

# --- monero_address: xmrig's address, the same with a character outside the alphabet, the
# largest full block, and an address of another chain.
T=$C/monero_address
mkdir -p "$T"
ADDRESS=$(sent client "$XMRIG" | head -n 1 | sed 's/.*"login":"\([^"]*\)".*/\1/')
printf '%s' "$ADDRESS" > "$T/xmrig-login"
printf '%s' "$ADDRESS" | sed 's/.$/0/' > "$T/bad-character"
printf '%s' jpXCZedGfVQ > "$T/full-block"
printf '%s' bcrt1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqdku202 > "$T/bech32"

for t in stratum_monero_pool_session stratum_eth_pool_session stratum_v1_miner_session \
    stratum_monero_miner_session monero_address; do
    echo "$C/$t: $(ls "$C/$t" | wc -l) seeds"
done
