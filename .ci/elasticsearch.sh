#!/usr/bin/env bash
# Starts, stops and checks a real Elasticsearch for the tests of mapstore/elasticsearch.
#
#   .ci/elasticsearch.sh start    download (once), unzip (once), start, wait until it answers
#   .ci/elasticsearch.sh stop     stop the instance started on this port (by its PID)
#   .ci/elasticsearch.sh status   exit 0 if the instance answers _cluster/health, else 1
#   .ci/elasticsearch.sh wipe     stop it and remove its folder (data included)
#
# The server is Elasticsearch's integration-test distribution (core modules only, no
# analysis-common, no ingest pipelines) from Maven Central, fetched with Maven into ~/.m2 and
# unzipped under $GRIDMAP_ES_ROOT. It runs single-node, security off, heap 512 MiB, on Java 17,
# as a non-root user (Elasticsearch refuses root: as root the script creates the system user
# gridmap-es). Its config, data, logs and PID file live under $GRIDMAP_ES_ROOT/<port>; a start
# after a stop keeps the data (a restart), wipe removes it.
#
# Environment (all optional):
#   GRIDMAP_ES_PORT      HTTP port (default 9200); one instance per port
#   GRIDMAP_ES_ROOT      working folder (default ${TMPDIR:-/tmp}/gridmap-es)
#   GRIDMAP_ES_VERSION   distribution version (default 8.19.7)
#   GRIDMAP_ES_WAIT      seconds to wait for the server to answer (default 240)
#   ES_JAVA_HOME         a Java 17 home; found under /usr/lib/jvm when unset
#
# The tests find the server through GRIDMAP_ES_URL (http://127.0.0.1:<port>).
set -euo pipefail

cmd="${1:-}"
port="${GRIDMAP_ES_PORT:-9200}"
root="${GRIDMAP_ES_ROOT:-${TMPDIR:-/tmp}/gridmap-es}"
version="${GRIDMAP_ES_VERSION:-8.19.7}"
wait_s="${GRIDMAP_ES_WAIT:-240}"
es_user="gridmap-es"
inst="$root/$port"
url="http://127.0.0.1:$port"
group="org/elasticsearch/distribution/integ-test-zip/elasticsearch"
zip="$HOME/.m2/repository/$group/$version/elasticsearch-$version.zip"
dist="$root/elasticsearch-$version"

log() { echo "elasticsearch.sh: $*" >&2; }

healthy() {
	curl -fsS --max-time 5 "$url/_cluster/health?wait_for_status=yellow&timeout=4s" >/dev/null 2>&1
}

# retry N SECONDS CMD...: run CMD (bounded by SECONDS) up to N times.
retry() {
	local n="$1" secs="$2" try
	shift 2
	for try in $(seq 1 "$n"); do
		if timeout "$secs" "$@"; then return 0; fi
		log "try $try of $n failed: $*"
		sleep $((try * 5))
	done
	return 1
}

apt_install() {
	[ "$(id -u)" = 0 ] || { log "$* missing and not root: install it"; return 1; }
	retry 3 300 apt-get update -qq || true
	DEBIAN_FRONTEND=noninteractive retry 3 600 apt-get install -y -qq --no-install-recommends "$@"
}

find_java17() {
	local h
	for h in "${ES_JAVA_HOME:-}" /usr/lib/jvm/java-17-openjdk-amd64 /usr/lib/jvm/java-17-openjdk-* /usr/lib/jvm/*17*; do
		[ -n "$h" ] && [ -x "$h/bin/java" ] || continue
		if "$h/bin/java" -version 2>&1 | grep -qE 'version "17[."]'; then
			echo "$h"
			return 0
		fi
	done
	return 1
}

fetch() {
	[ -s "$zip" ] && return 0
	command -v mvn >/dev/null || apt_install maven || true
	if command -v mvn >/dev/null; then
		log "downloading elasticsearch $version (integ-test-zip) with Maven"
		retry 3 900 mvn -q -B dependency:get \
			"-Dartifact=org.elasticsearch.distribution.integ-test-zip:elasticsearch:$version:zip" \
			-Dtransitive=false && [ -s "$zip" ] && return 0
	fi
	# Without Maven (or if it fails), the same artifact straight from Maven Central.
	log "downloading elasticsearch $version from Maven Central with curl"
	mkdir -p "$(dirname "$zip")"
	retry 3 900 curl -fsSL -o "$zip.part" "https://repo1.maven.org/maven2/$group/$version/elasticsearch-$version.zip"
	mv "$zip.part" "$zip"
}

unpack() {
	[ -x "$dist/bin/elasticsearch" ] && return 0
	mkdir -p "$root"
	rm -rf "$dist.part"
	mkdir -p "$dist.part"
	command -v unzip >/dev/null || command -v python3 >/dev/null || apt_install unzip
	if command -v unzip >/dev/null; then
		unzip -q "$zip" -d "$dist.part"
	else
		python3 -m zipfile -e "$zip" "$dist.part"
		chmod +x "$dist.part/elasticsearch-$version"/bin/* "$dist.part/elasticsearch-$version"/jdk/bin/* 2>/dev/null || true
	fi
	mv "$dist.part/elasticsearch-$version" "$dist"
	rm -rf "$dist.part"
}

pid_of() {
	[ -s "$inst/pid" ] && cat "$inst/pid"
}

start() {
	if healthy; then
		log "already answering at $url"
		return 0
	fi
	command -v curl >/dev/null || apt_install curl
	local java
	if ! java="$(find_java17)"; then
		apt_install openjdk-17-jre-headless
		java="$(find_java17)" || { log "no Java 17 found"; return 1; }
	fi
	fetch
	unpack
	stop_quiet
	rm -rf "$inst/config"
	mkdir -p "$inst/data" "$inst/logs"
	cp -r "$dist/config" "$inst/config"
	local run=()
	if [ "$(id -u)" = 0 ]; then
		id "$es_user" >/dev/null 2>&1 || useradd -r -m -s /usr/sbin/nologin "$es_user"
		chown -R "$es_user:" "$inst"
		chmod -R a+rX "$dist"
		chmod a+x "$root"
		run=(runuser -u "$es_user" --)
	fi
	log "starting on $url (java $java, folder $inst)"
	"${run[@]}" env ES_JAVA_HOME="$java" ES_PATH_CONF="$inst/config" ES_JAVA_OPTS="-Xms512m -Xmx512m" \
		"$dist/bin/elasticsearch" -d -p "$inst/pid" \
		-E discovery.type=single-node \
		-E xpack.security.enabled=false \
		-E cluster.name="gridmap-es-$port" \
		-E node.name="gridmap-es-$port" \
		-E network.host=127.0.0.1 \
		-E http.port="$port" \
		-E path.data="$inst/data" \
		-E path.logs="$inst/logs" \
		-E cluster.routing.allocation.disk.threshold_enabled=false \
		-E action.destructive_requires_name=false \
		>"$inst/stdout.log" 2>&1 || {
		log "failed to start:"
		tail -50 "$inst/stdout.log" >&2
		return 1
	}
	local deadline=$((SECONDS + wait_s))
	until healthy; do
		if [ "$SECONDS" -ge "$deadline" ]; then
			log "no answer from $url within ${wait_s}s; last log lines:"
			tail -30 "$inst/logs/gridmap-es-$port.log" >&2 2>/dev/null || tail -30 "$inst/stdout.log" >&2
			stop_quiet
			return 1
		fi
		local pid
		pid="$(pid_of || true)"
		if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
			log "the server (PID $pid) exited; last log lines:"
			tail -30 "$inst/logs/gridmap-es-$port.log" >&2 2>/dev/null || tail -30 "$inst/stdout.log" >&2
			return 1
		fi
		sleep 1
	done
	log "answering at $url after ${SECONDS}s (PID $(pid_of))"
}

stop_quiet() {
	local pid
	pid="$(pid_of || true)"
	[ -n "$pid" ] || return 0
	if kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid" 2>/dev/null || true
		local deadline=$((SECONDS + 60))
		while kill -0 "$pid" 2>/dev/null; do
			if [ "$SECONDS" -ge "$deadline" ]; then
				log "PID $pid still running after 60s: killing it"
				kill -KILL "$pid" 2>/dev/null || true
				break
			fi
			sleep 0.2
		done
	fi
	rm -f "$inst/pid"
}

case "$cmd" in
start) start ;;
stop)
	stop_quiet
	log "stopped the instance on port $port"
	;;
wipe)
	stop_quiet
	rm -rf "$inst"
	log "removed $inst"
	;;
status)
	if healthy; then
		echo "answering at $url (PID $(pid_of || echo unknown))"
	else
		echo "not answering at $url"
		exit 1
	fi
	;;
*)
	echo "usage: $0 start|stop|status|wipe   (env GRIDMAP_ES_PORT, GRIDMAP_ES_ROOT, GRIDMAP_ES_VERSION)" >&2
	exit 2
	;;
esac
