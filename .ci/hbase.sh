#!/usr/bin/env bash
# Runs a real HBase 2.6.3 standalone (master, region server and ZooKeeper in one JVM, data on the
# local filesystem) for the integration tests of mapstore/hbase.
#
#   .ci/hbase.sh start    collect the jars (Maven, once), start HBase, wait until it serves
#   .ci/hbase.sh stop     stop it by PID (TERM, then KILL after a deadline)
#   .ci/hbase.sh status   exit 0 when it runs and serves
#   .ci/hbase.sh addr     print the bootstrap address the tests take (GRIDMAP_HBASE_ADDR)
#
# Everything lives under $GRIDMAP_HBASE_HOME (default /tmp/gridmap-hbase): jars/, conf/,
# webapps/, data/ (kept across stop and start, so a restart finds
# its tables; GRIDMAP_HBASE_FRESH=1 wipes it first), hbase.pid, hbase.log. Ports: master RPC 16000, region
# server RPC 16020, ZooKeeper 2181; the web UIs are off.
#
# A second instance beside the first (another test, a heap size to try) takes a home and ports of
# its own: GRIDMAP_HBASE_HOME, GRIDMAP_HBASE_MASTER_PORT, GRIDMAP_HBASE_RS_PORT and
# GRIDMAP_HBASE_ZK_PORT; GRIDMAP_HBASE_JARS points it at an existing jars/ folder (no second
# Maven run). GRIDMAP_HBASE_HEAP sets the JVM heap (default 1g, the size the settings below are
# made for); GRIDMAP_HBASE_JAVA_OPTS adds JVM options (say -XX:+HeapDumpOnOutOfMemoryError).
#
# GRIDMAP_HBASE_REGIONSERVERS=2 (or more) starts extra region servers beside the standalone's
# own, each a JVM of its own (GRIDMAP_HBASE_RS_HEAP, default 1g) on the next RPC ports
# (16021, ...), joining through the standalone's ZooKeeper and sharing its data folder, so the
# master can move regions between servers (mapstore/hbase's TestRegionMove). Why processes and
# not the standalone's own local-region-servers setting (hbase.regionservers): that starts every
# region server in the one JVM on the one configured port, so a second one fails to bind unless
# every port is random (hbase.localcluster.assign.random.ports), the master's too, and the
# clients could no longer find the master at a known address. Logs hbase-rsN.log, PIDs
# hbase-rsN.pid; stop ends them first.
#
# Why it looks like this (see issue 19): the jars come from org.apache.hbase:hbase-server:2.6.3 and
# its runtime dependencies (.ci/hbase/pom.xml), because no HBase binary tarball can be fetched
# here; Hadoop's UserGroupInformation fails on Java 23+ ("getSubject is not supported"), so it runs
# on Java 17; the served jar lacks the hbase-webapps folders the info servers look up on the
# classpath, so empty ones are made.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
home="${GRIDMAP_HBASE_HOME:-/tmp/gridmap-hbase}"
jars="${GRIDMAP_HBASE_JARS:-$home/jars}"
pidfile="$home/hbase.pid"
log="$home/hbase.log"
start_deadline="${GRIDMAP_HBASE_START_TIMEOUT:-180}"
master_port="${GRIDMAP_HBASE_MASTER_PORT:-16000}"
rs_port="${GRIDMAP_HBASE_RS_PORT:-16020}"
zk_port="${GRIDMAP_HBASE_ZK_PORT:-2181}"
heap="${GRIDMAP_HBASE_HEAP:-1g}"
regionservers="${GRIDMAP_HBASE_REGIONSERVERS:-1}"
rs_heap="${GRIDMAP_HBASE_RS_HEAP:-1g}"

say() { echo "hbase.sh: $*" >&2; }

# java17 prints the path of a Java 17 runtime, installing one through apt when none is found.
java17() {
  local c
  for c in "${JAVA17_HOME:-}/bin/java" /usr/lib/jvm/java-17-openjdk-*/bin/java /usr/lib/jvm/temurin-17*/bin/java; do
    if [ -x "$c" ]; then echo "$c"; return 0; fi
  done
  if command -v java >/dev/null && java -version 2>&1 | grep -q 'version "17'; then command -v java; return 0; fi
  say "no Java 17 found: installing openjdk-17-jre-headless"
  apt_install openjdk-17-jre-headless
  for c in /usr/lib/jvm/java-17-openjdk-*/bin/java; do
    if [ -x "$c" ]; then echo "$c"; return 0; fi
  done
  say "Java 17 could not be installed"
  return 1
}

apt_install() {
  local try
  for try in 1 2 3; do
    if timeout 300 apt-get update -qq && DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq "$@" >&2; then
      return 0
    fi
    say "apt-get install $*: try $try failed"
    sleep $((try * 5))
  done
  return 1
}

# fetch_jars collects the jars once; a complete copy is marked by jars/.complete.
fetch_jars() {
  if [ -f "$jars/.complete" ]; then return 0; fi
  if ! command -v mvn >/dev/null; then
    say "mvn not found: installing maven"
    apt_install maven
  fi
  local try tmp="$home/jars.tmp"
  for try in 1 2 3; do
    rm -rf "$tmp"
    say "collecting HBase jars with Maven (try $try)"
    if (cd "$here/hbase" && JAVA_HOME="$(dirname "$(dirname "$(java17)")")" timeout 600 mvn -B -q \
      -Dmaven.wagon.http.retryHandler.count=3 -Dmaven.wagon.rto=60000 \
      dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp") >&2; then
      if ls "$tmp"/hbase-server-2.6.3.jar >/dev/null 2>&1; then
        rm -rf "$jars" && mv "$tmp" "$jars" && touch "$jars/.complete"
        say "$(ls "$jars"/*.jar | wc -l) jars, $(du -sh "$jars" | cut -f1)"
        return 0
      fi
    fi
    say "Maven try $try failed"
    sleep $((try * 10))
  done
  say "could not collect the HBase jars"
  return 1
}

write_conf() {
  mkdir -p "$home/conf" "$home/webapps/hbase-webapps/master" "$home/webapps/hbase-webapps/regionserver" \
    "$home/webapps/hbase-webapps/static"
  # The served jars log through slf4j-reload4j (log4j 1.2 API): without this file nothing is
  # logged, and the readiness check below reads the log.
  cat >"$home/conf/log4j.properties" <<'PROPS'
log4j.rootLogger=INFO,console
log4j.appender.console=org.apache.log4j.ConsoleAppender
log4j.appender.console.target=System.err
log4j.appender.console.layout=org.apache.log4j.PatternLayout
log4j.appender.console.layout.ConversionPattern=%d{ISO8601} %-5p [%t] %c{2}: %m%n
log4j.logger.org.apache.zookeeper=WARN
log4j.logger.org.apache.hadoop=WARN
log4j.logger.org.apache.hadoop.hbase=INFO
PROPS
  site_xml false "$rs_port" >"$home/conf/hbase-site.xml"
  local i
  for i in $(seq 1 $((regionservers - 1))); do
    mkdir -p "$home/conf-rs$i"
    cp "$home/conf/log4j.properties" "$home/conf-rs$i/"
    site_xml true $((rs_port + i)) >"$home/conf-rs$i/hbase-site.xml"
  done
}

# site_xml prints the configuration of the standalone JVM (distributed=false: master, region
# server and ZooKeeper in one) or of an extra region server (distributed=true: a process of its
# own that finds the master through the standalone's ZooKeeper), the latter on port $2.
site_xml() {
  cat <<EOF
<?xml version="1.0"?>
<configuration>
  <property><name>hbase.cluster.distributed</name><value>$1</value></property>
  <property><name>hbase.zookeeper.quorum</name><value>127.0.0.1</value></property>
  <property><name>hbase.rootdir</name><value>file://$home/data/hbase</value></property>
  <property><name>hbase.zookeeper.property.dataDir</name><value>$home/data/zookeeper</value></property>
  <property><name>hbase.tmp.dir</name><value>$home/data/tmp</value></property>
  <!-- The local filesystem has no hflush/hsync capability check to pass. -->
  <property><name>hbase.unsafe.stream.capability.enforce</name><value>false</value></property>
  <!-- Socorro's dumps go up to 20 MB, stored as one cell each: raise the 10 MiB default cell
       limit (a larger cell fails with "exceeds limit", ErrValueTooLarge in mapstore/hbase). -->
  <property><name>hbase.server.keyvalue.maxsize</name><value>67108864</value></property>
  <!-- A call slower than 10 s (easy on a loaded CI box) is logged with its request printed as
       protobuf text: for a multi-megabyte batch that string alone exhausted the 1 GiB heap and
       the region server aborted (OutOfMemoryError in TextFormat). Keep the log, drop the dump. -->
  <property><name>hbase.ipc.warn.response.time</name><value>-1</value></property>
  <property><name>hbase.ipc.warn.response.size</name><value>-1</value></property>
  <!-- Memory for a 1 GiB heap taking multi-megabyte cells (issue 19). Every report a region
       server sends the master (every 3 s) snapshots its RPC handlers, and the snapshot prints
       each running call's request as protobuf text (MonitoredRPCHandlerImpl.generateCallInfoMap;
       HBASE-30092, open upstream): about 3 bytes of string per byte of request for binary
       dumps, so 30 handlers busy with 8 MB multi requests while the memstores block writes
       asked for more than the heap. The clients bound their bytes in flight per server
       (mapstore/hbase Config.MaxInFlightBytes); here the memstores get 20% of the heap (default
       40%), flushed at 32 MB (default 128 MB, which ten regions never reach before the global
       limit blocks every write), the block cache 10% (default 40%: write-behind rarely reads),
       and the call queue at most 128 MB of requests (default 1 GiB, the whole heap): past it the
       server answers CallQueueTooBigException, which a client retries after a back-off. -->
  <property><name>hbase.regionserver.global.memstore.size</name><value>0.2</value></property>
  <property><name>hbase.hregion.memstore.flush.size</name><value>33554432</value></property>
  <property><name>hfile.block.cache.size</name><value>0.1</value></property>
  <property><name>hbase.ipc.server.max.callqueue.size</name><value>134217728</value></property>
  <!-- The standalone's master, region server and ZooKeeper share one JVM; its ZooKeeper session
       times out after 10 s by default, and a 4 s full collection followed by seconds of CPU
       starvation on a loaded 2-core box expired it: the master aborted (after 11 minutes of the
       Socorro demo's dumps, with 300 MB of the heap live). 40 s is ZooKeeper's ceiling for its
       default tick (20 ticks of 2 s). -->
  <property><name>zookeeper.session.timeout.localHBaseCluster</name><value>40000</value></property>
  <property><name>hbase.master.info.port</name><value>-1</value></property>
  <property><name>hbase.regionserver.info.port</name><value>-1</value></property>
  <property><name>hbase.master.port</name><value>$master_port</value></property>
  <property><name>hbase.regionserver.port</name><value>$2</value></property>
  <property><name>hbase.zookeeper.property.clientPort</name><value>$zk_port</value></property>
  <!-- Advertise the loopback name so the client reaches the region server by what meta says. -->
  <property><name>hbase.unsafe.regionserver.hostname</name><value>127.0.0.1</value></property>
  <property><name>hbase.master.hostname</name><value>127.0.0.1</value></property>
</configuration>
EOF
}

# running [pidfile]: the process of pidfile (default: the standalone's) is alive.
running() {
  local f="${1:-$pidfile}"
  [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null
}

port_open() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# serving: both RPC ports answer and the master says it finished initialising (meta is assigned
# and the namespace table is online by then), and every extra region server serves.
serving() {
  running && port_open "$master_port" && port_open "$rs_port" &&
    grep -q 'Master has completed initialization' "$log" 2>/dev/null || return 1
  local i
  for i in $(seq 1 $((regionservers - 1))); do
    rs_serving "$i" || return 1
  done
}

# rs_serving i: extra region server i runs, answers on its port and has reported for duty.
rs_serving() {
  running "$home/hbase-rs$1.pid" && port_open $((rs_port + $1)) &&
    grep -q 'Serving as' "$home/hbase-rs$1.log" 2>/dev/null
}

# launch main-class conf-dir log pid-file heap: runs one HBase JVM in the background.
# setsid: the JVM gets a session of its own, so a test harness that ends the caller's process
# group does not take HBase with it, and stop ends exactly this PID.
launch() {
  local java
  java="$(java17)"
  # shellcheck disable=SC2086 # GRIDMAP_HBASE_JAVA_OPTS holds several options
  # The parallel collector, not G1: with G1 on a 1 GiB heap (1 MB regions) every cell over
  # 512 KB is a humongous object needing contiguous free regions, which G1 never moves, and
  # under multi-megabyte dumps the heap fragmented until a 20 MB allocation failed with half the
  # heap free (full GCs at 512 MB of 1024 MB, then OutOfMemoryError). The parallel collector's
  # full collections compact everything; its pauses (a few hundred ms on this heap) are fine for
  # a test server.
  setsid "$java" -Xms256m -Xmx"$5" -XX:+UseParallelGC \
    -Djava.net.preferIPv4Stack=true ${GRIDMAP_HBASE_JAVA_OPTS:-} \
    -Dhbase.log.dir="$home" -Dhbase.home.dir="$home" \
    --add-opens java.base/java.lang=ALL-UNNAMED \
    --add-opens java.base/java.lang.reflect=ALL-UNNAMED \
    --add-opens java.base/java.nio=ALL-UNNAMED \
    --add-opens java.base/java.io=ALL-UNNAMED \
    --add-opens java.base/java.util=ALL-UNNAMED \
    --add-opens java.base/java.util.concurrent=ALL-UNNAMED \
    --add-opens java.base/java.util.concurrent.atomic=ALL-UNNAMED \
    --add-opens java.base/java.net=ALL-UNNAMED \
    --add-opens java.base/sun.nio.ch=ALL-UNNAMED \
    --add-opens java.base/jdk.internal.misc=ALL-UNNAMED \
    --add-exports java.base/jdk.internal.misc=ALL-UNNAMED \
    --add-exports java.base/sun.nio.ch=ALL-UNNAMED \
    --add-exports java.security.jgss/sun.security.krb5=ALL-UNNAMED \
    -cp "$2:$home/webapps:$jars/*" \
    "$1" start </dev/null >"$3" 2>&1 &
  echo $! >"$4"
}

# wait_for what check-command log pid-file: polls check until it passes, the process exits, or
# the start deadline passes.
wait_for() {
  local deadline=$((SECONDS + start_deadline))
  while ! $2; do
    if ! running "$4"; then
      say "$1 exited while starting; last lines of $3:"
      tail -n 40 "$3" >&2
      return 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      say "$1 did not serve within ${start_deadline}s; last lines of $3:"
      tail -n 40 "$3" >&2
      return 1
    fi
    sleep 0.5
  done
}

rss_mb() { awk '/VmRSS/ {print int($2/1024)}' "/proc/$(cat "$1")/status"; }

start() {
  if serving; then say "already serving (pid $(cat "$pidfile"))"; return 0; fi
  if running || [ -n "$(ls "$home"/hbase-rs*.pid 2>/dev/null)" ]; then stop; fi
  mkdir -p "$home"
  fetch_jars
  write_conf
  java17 >/dev/null
  if [ "${GRIDMAP_HBASE_FRESH:-0}" = 1 ]; then rm -rf "$home/data"; fi
  # ZooKeeper holds only ephemeral coordination state in HBase 2 (tables, regions and
  # procedures live in hbase:meta and the master's local region): a stale copy makes the new
  # master wait for the old sessions to expire (up to 40 s), so it starts empty.
  rm -rf "$home/data/zookeeper"
  mkdir -p "$home/data"
  local t0 t1
  t0=$(date +%s.%N)
  launch org.apache.hadoop.hbase.master.HMaster "$home/conf" "$log" "$pidfile" "$heap"
  if ! wait_for HBase master_serving "$log" "$pidfile"; then stop; return 1; fi
  t1=$(date +%s.%N)
  say "serving on 127.0.0.1:$master_port (pid $(cat "$pidfile")) after $(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b-a}')s, $(rss_mb "$pidfile") MB resident"
  local i
  for i in $(seq 1 $((regionservers - 1))); do
    launch org.apache.hadoop.hbase.regionserver.HRegionServer "$home/conf-rs$i" "$home/hbase-rs$i.log" "$home/hbase-rs$i.pid" "$rs_heap"
  done
  for i in $(seq 1 $((regionservers - 1))); do
    if ! wait_for "region server $i" "rs_serving $i" "$home/hbase-rs$i.log" "$home/hbase-rs$i.pid"; then stop; return 1; fi
    t1=$(date +%s.%N)
    say "region server $i serving on 127.0.0.1:$((rs_port + i)) (pid $(cat "$home/hbase-rs$i.pid")) after $(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b-a}')s, $(rss_mb "$home/hbase-rs$i.pid") MB resident"
  done
}

master_serving() {
  running && port_open "$master_port" && port_open "$rs_port" &&
    grep -q 'Master has completed initialization' "$log" 2>/dev/null
}

# stop_pid what pid-file: TERM, then KILL after 30 s.
stop_pid() {
  if ! running "$2"; then rm -f "$2"; return 0; fi
  local pid
  pid="$(cat "$2")"
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + 30))
  while kill -0 "$pid" 2>/dev/null; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      say "$1 (pid $pid) still running after 30s: KILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    sleep 0.2
  done
  rm -f "$2"
  say "$1 stopped (pid $pid)"
}

# stop: the extra region servers first (their regions go back to the standalone's), then the
# standalone.
stop() {
  local f
  for f in "$home"/hbase-rs*.pid; do
    [ -e "$f" ] || continue
    stop_pid "region server $(basename "$f" .pid | sed 's/hbase-rs//')" "$f"
  done
  stop_pid HBase "$pidfile"
}

case "${1:-}" in
start) start ;;
stop) stop ;;
status) if serving; then say "serving (pid $(cat "$pidfile"))"; else say "not serving"; exit 1; fi ;;
addr) echo "127.0.0.1:$master_port" ;;
fetch) fetch_jars ;;
*) echo "usage: $0 start|stop|status|addr|fetch" >&2; exit 2 ;;
esac
