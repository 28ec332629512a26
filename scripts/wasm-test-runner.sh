#!/usr/bin/env bash
# Cargo's runner for the tracker's wasm32 tests when scripts/test-browser.sh runs them
# (CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER): wasm-bindgen-test-runner, plus a few idle
# HTTP connections of our own to the runner's web server, held until the runner exits.
#
# Why: the runner serves the test page with tiny_http 0.12, which hands each accepted
# connection to a pool that keeps 4 idle threads and starts a new thread only when it counts
# no idle one. A thread that was woken for a connection still counts as idle until it
# actually runs, so when Chromium opens several connections at once (it fetches the eight
# JS snippets of the tracker in parallel, on up to 6 connections), some of them can be queued
# behind the others instead of getting a thread. Each thread then stays with its connection
# for as long as Chromium keeps it alive, so a queued connection is never read: its request
# (one of the snippets) gets no answer and the page never loads.
# With our own connections occupying the pool's standing threads (each confirmed by an
# answer before the next is opened, so these never race), the pool has no idle thread left
# and starts a thread of its own for each of Chromium's connections.
set -u
HOLD=8 # at least the pool's 4 standing threads; any more get threads of their own

wasm-bindgen-test-runner "$@" &
runner=$!

# The port of the runner's listening socket (its web server), from /proc.
listen_port() {
  local inodes="" link hex
  for link in /proc/"$runner"/fd/*; do
    link=$(readlink "$link" 2>/dev/null) || continue
    case $link in socket:\[*\]) inodes+=" ${link//[^0-9]/}" ;; esac
  done
  [ -n "$inodes" ] || return 1
  hex=$(awk -v inodes="$inodes " '$4 == "0A" && index(inodes, " " $10 " ") {
    split($2, a, ":"); print a[2]; exit }' /proc/net/tcp)
  [ -n "$hex" ] && echo $((16#$hex))
}

# Opens a connection, asks for a page that does not exist and waits for tiny_http's answer
# (a 404), which means a pool thread now serves this connection and waits on it for a next
# request.
hold_one() {
  local fd line
  { exec {fd}<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null || return 1
  printf 'GET /__hold HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n' >&"$fd"
  while IFS= read -r -t 5 line <&"$fd" && [ "$line" != $'\r' ]; do
    if [[ $line == "Server: tiny-http"* ]]; then
      held+=("$fd")
      return 0
    fi
  done
  exec {fd}>&-
  return 1
}

held=()
port=""
# The server listens before chromedriver starts, so this is done before Chromium connects.
while [ "$SECONDS" -lt 60 ] && kill -0 "$runner" 2>/dev/null; do
  if port=$(listen_port) && hold_one "$port"; then
    while [ "${#held[@]}" -lt "$HOLD" ] && hold_one "$port"; do :; done
    break
  fi
  sleep 0.01
done
if kill -0 "$runner" 2>/dev/null && [ "${#held[@]}" -lt "$HOLD" ]; then
  echo "wasm-test-runner: held ${#held[@]} of $HOLD connections to the test server (port ${port:-?})" >&2
fi

wait "$runner"
