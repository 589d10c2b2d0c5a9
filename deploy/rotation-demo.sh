#!/usr/bin/env bash
# Key-rotation demo against the local system. In one terminal:
#     IDP_ADMIN_TOKEN=demo go run ./deploy/local
# and in another:
#     IDP_ADMIN_TOKEN=demo deploy/rotation-demo.sh
# It signs up, gets token A, rotates, gets token B (new kid), rotates again, and shows both tokens
# accepted by the running work-item service, with the JWKS at each step.
set -euo pipefail
IDP=${IDP_URL:-http://127.0.0.1:8080}
WI=${WORKITEMS_URL:-http://127.0.0.1:8081}
: "${IDP_ADMIN_TOKEN:?set IDP_ADMIN_TOKEN to the admin token the IdP was started with}"

field() { sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p"; }
kid() { # the kid from a JWT's header
  local h=${1%%.*}
  h=$(tr '_-' '/+' <<<"$h")
  while (( ${#h} % 4 )); do h+="="; done
  base64 -d <<<"$h" 2>/dev/null | field kid
}
jwks() { echo "  JWKS: $(curl -fsS "$IDP/.well-known/jwks.json" | grep -o '"kid":"[^"]*"' | cut -d'"' -f4 | cut -c1-12 | paste -sd' ')"; }
keys() {
  curl -fsS -H "Authorization: Bearer $IDP_ADMIN_TOKEN" "$IDP/admin/keys" |
    grep -o '"kid":"[^"]*","state":"[^"]*"' | sed 's/"kid":"\(.\{12\}\)[^"]*","state":"\([^"]*\)"/  \1… \2/'
}
rotate() { curl -fsS -o /dev/null -X POST -H "Authorization: Bearer $IDP_ADMIN_TOKEN" "$IDP/admin/keys/rotate"; }
login() {
  curl -fsS -X POST "$IDP/auth" -H 'Content-Type: application/json' \
    -d "{\"username\":\"$user\",\"password\":\"$pw\"}" | field access_token
}
check() { # $1 name, $2 token
  local code
  code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: JWT $2" "$WI/workitems")
  echo "  token $1 (kid $(kid "$2" | cut -c1-12)…) → work-item service answers $code"
  [ "$code" = 200 ]
}

user="demo$RANDOM$RANDOM"
pw="rotation-demo-$RANDOM-$RANDOM"
echo "1. sign up $user and get token A"
curl -fsS -X POST "$IDP/signup" -H 'Content-Type: application/json' \
  -d "{\"username\":\"$user\",\"password\":\"$pw\"}" >/dev/null
A=$(login)
keys; jwks
check A "$A"

echo "2. rotate: next becomes current, current retires (still published), a new next appears"
rotate
keys; jwks
B=$(login)
echo "   token B is signed by a new key: $(kid "$A" | cut -c1-12)… → $(kid "$B" | cut -c1-12)…"

echo "3. rotate again"
rotate
keys; jwks
check A "$A"
check B "$B"
echo "Both tokens still verify: their keys stay published until their last token has expired."
