#!/usr/bin/env bash
# A local ClickHouse server for tests and `make run`, with nothing to install
# system-wide. Debian's clickhouse-server (18.16) is too old for the
# clickhouse-go/v2 protocol, so this runs the ClickHouse 26.7 engine shipped
# in the npm package @chdb/lib-linux-x64-gnu (libchdb.so) as a server on
# loopback, through the tiny loader chdb-server.c beside this script.
#
#   deployments/dev/clickhouse.sh start    # fetch (once), start, wait until ready; prints the address
#   deployments/dev/clickhouse.sh stop     # stop the server started from this state dir (by PID)
#   deployments/dev/clickhouse.sh status   # running or not; exit 1 when not
#   deployments/dev/clickhouse.sh addr     # host:port of the native protocol
#   deployments/dev/clickhouse.sh fetch    # only download the library and build the loader
#
# make test runs `start --for-tests` (through test-deps.sh) and afterwards
# `stop --if-started-for-tests`, which leaves alone a server that was already
# running. The chdb engine exits when a native-protocol login fails (a wrong
# password): restart it with `start`; a real clickhouse-server does not.
#
# Environment:
#   CLICKHOUSE_TCP_PORT   native protocol port (default 19000)
#   CLICKHOUSE_HTTP_PORT  HTTP port (default 18123)
#   CLICKHOUSE_DIR        state dir: data/, server.pid, server.log, addr, http_addr
#                         (default <repo>/.data/clickhouse)
#   CLICKHOUSE_LIFETIME   seconds after which the server stops by itself
#                         (default 86400), so a forgotten one does not linger
#   BUSBAR_CACHE          where the ~180 MB download and the loader are kept,
#                         outside the repo (default ~/.cache/busbar)
#
# The server has one user, "default", without a password, and listens on
# 127.0.0.1 only. It is a development tool: run a real clickhouse-server in
# production (deployments/clickhouse/).
set -euo pipefail

CHDB_PACKAGE="@chdb/lib-linux-x64-gnu"
CHDB_VERSION="26.7.3-stable.1"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
tcp_port="${CLICKHOUSE_TCP_PORT:-19000}"
http_port="${CLICKHOUSE_HTTP_PORT:-18123}"
state="${CLICKHOUSE_DIR:-$repo/.data/clickhouse}"
lifetime="${CLICKHOUSE_LIFETIME:-86400}"
cache="${BUSBAR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/busbar}/chdb/$CHDB_VERSION"
lib="$cache/libchdb.so"

say() { echo "clickhouse: $*" >&2; }
die() { say "$*"; exit 1; }

# fetch downloads libchdb.so into the cache (once) and builds the loader.
fetch() {
	mkdir -p "$cache"
	if [[ ! -s "$lib" ]]; then
		command -v npm >/dev/null || die "npm is needed to download $CHDB_PACKAGE (apt-get install npm)"
		say "downloading $CHDB_PACKAGE@$CHDB_VERSION (~180 MB, once) into $cache"
		local tmp
		tmp="$(mktemp -d "$cache/.fetch.XXXXXX")"
		(cd "$tmp" && npm pack --silent "$CHDB_PACKAGE@$CHDB_VERSION" >/dev/null 2>"$tmp/npm.log") ||
			{ cat "$tmp/npm.log" >&2; rm -rf "$tmp"; die "npm pack failed"; }
		tar -xzf "$tmp"/*.tgz -C "$tmp" package/libchdb.so ||
			{ rm -rf "$tmp"; die "the package has no libchdb.so"; }
		mv "$tmp/package/libchdb.so" "$lib"
		rm -rf "$tmp"
	fi
	# The loader is rebuilt whenever its source changes.
	local src="$here/chdb-server.c" sum
	sum="$(cksum <"$src" | cut -d' ' -f1)"
	loader="$cache/chdb-server-$sum"
	if [[ ! -x "$loader" ]]; then
		local cc="${CC:-cc}"
		if ! command -v "$cc" >/dev/null; then
			say "no C compiler; installing gcc"
			(apt-get update -qq && apt-get install -y -qq gcc libc6-dev) >/dev/null || die "cannot install gcc; install a C compiler"
		fi
		"$cc" -O2 -o "$loader.tmp" "$src" -ldl && mv "$loader.tmp" "$loader"
	fi
}

pid_alive() {
	[[ -f "$state/server.pid" ]] || return 1
	local pid
	pid="$(cat "$state/server.pid")"
	[[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# ping asks the HTTP interface whether the server answers queries.
ping() {
	local reply
	reply="$({ exec 3<>"/dev/tcp/127.0.0.1/$http_port" &&
		printf 'GET /ping HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3 && timeout 2 cat <&3; } 2>/dev/null)" || return 1
	[[ "$reply" == *"Ok."* ]]
}

start() {
	if pid_alive && ping; then
		echo "127.0.0.1:$tcp_port"
		return 0
	fi
	rm -f "$state/started-for-tests"
	[[ "${1:-}" == "--for-tests" ]] && mkdir -p "$state" && touch "$state/started-for-tests"
	fetch
	for p in "$tcp_port" "$http_port"; do
		port_open "$p" && die "port $p on 127.0.0.1 is in use; pick others with CLICKHOUSE_TCP_PORT / CLICKHOUSE_HTTP_PORT"
	done
	mkdir -p "$state/data"
	rm -f "$state/addr" "$state/http_addr"
	# One row per second for $lifetime seconds keeps the query, and so the
	# server, alive; max_block_size=1 because sleeps are capped per block.
	local keepalive="SYSTEM START LISTEN TCP; SYSTEM START LISTEN HTTP; SELECT sleepEachRow(1) FROM numbers($lifetime) SETTINGS max_block_size = 1 FORMAT Null"
	# setsid + redirections: the server must not hold the caller's terminal
	# or pipes (make would wait for it).
	setsid "$loader" "$lib" --path="$state/data/" --listen_host=127.0.0.1 \
		--tcp_port="$tcp_port" --http_port="$http_port" \
		--multiquery --query "$keepalive" </dev/null >"$state/server.log" 2>&1 &
	echo $! >"$state/server.pid"
	for _ in $(seq 1 240); do
		if ping; then
			echo "127.0.0.1:$http_port" >"$state/http_addr"
			echo "127.0.0.1:$tcp_port" >"$state/addr"
			say "ready on 127.0.0.1:$tcp_port (native), 127.0.0.1:$http_port (HTTP); pid $(cat "$state/server.pid"), state in $state"
			echo "127.0.0.1:$tcp_port"
			return 0
		fi
		pid_alive || { tail -20 "$state/server.log" >&2; die "the server exited at start (log: $state/server.log)"; }
		sleep 0.25
	done
	stop
	die "the server did not answer within 60s (log: $state/server.log)"
}

stop() {
	if [[ "${1:-}" == "--if-started-for-tests" ]]; then
		[[ -f "$state/started-for-tests" ]] || return 0
	fi
	rm -f "$state/addr" "$state/http_addr" "$state/started-for-tests"
	if ! pid_alive; then
		rm -f "$state/server.pid"
		return 0
	fi
	local pid
	pid="$(cat "$state/server.pid")"
	kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 1 100); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
	rm -f "$state/server.pid"
	say "stopped (pid $pid)"
}

case "${1:-}" in
start) start "${2:-}" ;;
stop) stop "${2:-}" ;;
status)
	if pid_alive && ping; then
		echo "running on 127.0.0.1:$tcp_port (native), 127.0.0.1:$http_port (HTTP), pid $(cat "$state/server.pid")"
	else
		echo "not running"
		exit 1
	fi
	;;
addr) echo "127.0.0.1:$tcp_port" ;;
fetch) fetch && echo "$lib" ;;
*)
	echo "usage: $0 start|stop|status|addr|fetch" >&2
	exit 2
	;;
esac
