#!/bin/sh
# Writes this pod's $CONF_DIR/valkey.conf and $CONF_DIR/sentinel.conf.
#
# Who is master: whatever a Sentinel of the set answers for $MASTER_NAME
# (so a pod that restarts after a failover rejoins as a replica of the
# new master); when no Sentinel answers (a new set), pod 0 is the master
# and the others replicate it.
#
# Environment: POD_NAME (<statefulset>-<ordinal>), SELF_HOST (this pod's
# DNS name), FIRST_HOST (pod 0's), VALKEY_PORT, FIRST_PORT (pod 0's port,
# default VALKEY_PORT), SENTINEL_PORT, SENTINEL_ADDRS (host:port of every
# Sentinel, space separated), MASTER_NAME, QUORUM, DOWN_AFTER_MS,
# FAILOVER_TIMEOUT_MS, DATA_DIR, MAXMEMORY, MAXMEMORY_POLICY, APPENDFSYNC,
# REPLICA_PRIORITY, VALKEY_PASSWORD, BASE_CONF, BASE_SENTINEL_CONF,
# CONF_DIR, CLI (valkey-cli or redis-cli).
set -eu

ordinal=${POD_NAME##*-}
first_port=${FIRST_PORT:-$VALKEY_PORT}
master_host=""
master_port=""

for addr in $SENTINEL_ADDRS; do
	host=${addr%:*}
	port=${addr##*:}
	[ "$host" = "$SELF_HOST" ] && [ "$port" = "$SENTINEL_PORT" ] && continue
	# timeout(1): a Sentinel whose address black-holes must not hold
	# the pod's start for the TCP connect timeout.
	if answer=$(timeout 3 "$CLI" -h "$host" -p "$port" --raw \
	    SENTINEL get-master-addr-by-name "$MASTER_NAME" 2>/dev/null); then
		# Two lines (host, port) when it knows the master.
		h=$(printf '%s\n' "$answer" | sed -n 1p)
		p=$(printf '%s\n' "$answer" | sed -n 2p)
		case "$p" in
		'' | *[!0-9]*) ;;
		*)
			master_host=$h
			master_port=$p
			echo "init: sentinel $addr says the master is $h:$p"
			break
			;;
		esac
	fi
done
if [ -z "$master_host" ]; then
	if [ "$ordinal" = 0 ]; then
		master_host=$SELF_HOST
		master_port=$VALKEY_PORT
	else
		master_host=$FIRST_HOST
		master_port=$first_port
	fi
	echo "init: no sentinel knows $MASTER_NAME; master is $master_host:$master_port"
fi

# Double quotes and backslashes escaped for the config file's quoting;
# printf, not echo, writes it (dash's echo would undo the escapes).
pw=$(printf '%s' "$VALKEY_PASSWORD" | sed 's/\\/\\\\/g; s/"/\\"/g')

umask 077
{
	echo "include $BASE_CONF"
	echo "port $VALKEY_PORT"
	echo "dir $DATA_DIR"
	echo "maxmemory $MAXMEMORY"
	echo "maxmemory-policy $MAXMEMORY_POLICY"
	echo "appendfsync $APPENDFSYNC"
	printf 'requirepass "%s"\n' "$pw"
	printf 'masterauth "%s"\n' "$pw"
	echo "replica-announce-ip $SELF_HOST"
	echo "replica-announce-port $VALKEY_PORT"
	echo "replica-priority $REPLICA_PRIORITY"
	if [ "$master_host" != "$SELF_HOST" ] || [ "$master_port" != "$VALKEY_PORT" ]; then
		echo "replicaof $master_host $master_port"
	fi
} >"$CONF_DIR/valkey.conf.tmp"
mv "$CONF_DIR/valkey.conf.tmp" "$CONF_DIR/valkey.conf"

{
	cat "$BASE_SENTINEL_CONF"
	echo "port $SENTINEL_PORT"
	echo "dir $CONF_DIR"
	echo "sentinel announce-ip $SELF_HOST"
	echo "sentinel announce-port $SENTINEL_PORT"
	echo "sentinel monitor $MASTER_NAME $master_host $master_port $QUORUM"
	printf 'sentinel auth-pass %s "%s"\n' "$MASTER_NAME" "$pw"
	echo "sentinel down-after-milliseconds $MASTER_NAME $DOWN_AFTER_MS"
	echo "sentinel failover-timeout $MASTER_NAME $FAILOVER_TIMEOUT_MS"
	echo "sentinel parallel-syncs $MASTER_NAME 1"
} >"$CONF_DIR/sentinel.conf.tmp"
mv "$CONF_DIR/sentinel.conf.tmp" "$CONF_DIR/sentinel.conf"
if [ "$master_host" = "$SELF_HOST" ] && [ "$master_port" = "$VALKEY_PORT" ]; then
	echo "init: $POD_NAME configured as the master"
else
	echo "init: $POD_NAME configured as a replica of $master_host:$master_port"
fi
