#!/usr/bin/env bash
# integration/run.sh: the real-server harness of imapfront (see integration/README.md).
#
#   run.sh              up, test, down (everything is stopped on failure, Ctrl-C or TERM)
#   run.sh up           install what is missing, start every server, seed users and mail,
#                       write <lab>/env.sh and print its path (/tmp/imapfront-it/current -> <lab>)
#   run.sh test [args]  source env.sh, run go test -tags integration [args] ./integration/... and every
#                       other package with integration-tagged tests (or $IMAPFRONT_IT_PACKAGES)
#   run.sh down [lab]   stop everything a lab started, by the pids it recorded
#   run.sh install      only the package step
#   run.sh status       what the current lab runs
#
# Needs root on Debian 12. Every server listens on 127.0.0.1 only; all configuration, data, logs and
# pids live in one directory made by mktemp -d under $IMAPFRONT_IT_ROOT (default /tmp/imapfront-it).
set -Eeuo pipefail
trap 'echo "run.sh: line $LINENO: command failed (status $?): $BASH_COMMAND" >&2' ERR

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TEMPLATES=$REPO/integration/conf
ROOT=${IMAPFRONT_IT_ROOT:-/tmp/imapfront-it}
CACHE=${IMAPFRONT_IT_CACHE:-/var/cache/imapfront-it}
WAIT=${IMAPFRONT_IT_WAIT:-60} # seconds each server gets to come up
REALM=IMAPFRONT.TEST
CYRUS_BIN=/usr/lib/cyrus/bin
export PATH=$PATH:/usr/local/go/bin:/usr/sbin:/sbin

# Fixed addresses (the interop captures and later issues use them), unless offset.
# IMAPFRONT_IT_PORT_OFFSET moves every port by that much, so a second lab (CI while a
# development lab runs) can coexist; give it its own IMAPFRONT_IT_ROOT too.
OFF=${IMAPFRONT_IT_PORT_OFFSET:-0}
MUPDATE_PORT=$((13905 + OFF))
MUPDATE_GSS_PORT=$((13915 + OFF))
BE1_PORT=$((12143 + OFF))
BE2_PORT=$((12243 + OFF))
FE_PORT=$((11143 + OFF))
FE_MUPDATE_PORT=$((13906 + OFF))
DOVECOT_PORT=$((14143 + OFF))
DOVECOT_IMAPS_PORT=$((14993 + OFF))
KDC_PORT=$((18888 + OFF))
KADMIN_PORT=$((18749 + OFF))
KPASSWD_PORT=$((18464 + OFF))
PORTS="$MUPDATE_PORT $MUPDATE_GSS_PORT $BE1_PORT $BE2_PORT $FE_PORT $FE_MUPDATE_PORT $DOVECOT_PORT $DOVECOT_IMAPS_PORT $KDC_PORT"
# --- LMTP, POP3 and ManageSieve on every backend (issue 19) ---
BE1_LMTP_PORT=$((12124 + OFF))
BE1_POP3_PORT=$((12110 + OFF))
BE1_SIEVE_PORT=$((12190 + OFF))
BE2_LMTP_PORT=$((12224 + OFF))
BE2_POP3_PORT=$((12210 + OFF))
BE2_SIEVE_PORT=$((12290 + OFF))
DOVECOT_LMTP_PORT=$((14024 + OFF))
DOVECOT_POP3_PORT=$((14110 + OFF))
DOVECOT_SIEVE_PORT=$((14190 + OFF))
PROTO_PORTS="$BE1_LMTP_PORT $BE1_POP3_PORT $BE1_SIEVE_PORT $BE2_LMTP_PORT $BE2_POP3_PORT $BE2_SIEVE_PORT
  $DOVECOT_LMTP_PORT $DOVECOT_POP3_PORT $DOVECOT_SIEVE_PORT"
PORTS="$PORTS $PROTO_PORTS"
# Dovecot's lmtp, pop3 and managesieve, unpacked into their own directory beside the core's (so a lab
# running from the core's directory is never disturbed) and overlaid with it.
DOVECOT_EXTRA_DEBS="dovecot-lmtpd dovecot-pop3d dovecot-managesieved dovecot-sieve"
# swaks: the MTA of the LMTP tests.
PROTO_PACKAGES="swaks"

# Users: name:password. Cyrus realms get the first five; Dovecot gets alice bob carol dave.
CYRUS_USERS="alice:alicepw bob:bobpw carol:carolpw cyrus:cyruspw mupdateuser:mupdatepw"
CYRUS_REALMS="mupdate-master 127.0.0.1:$BE1_PORT 127.0.0.1:$BE2_PORT 127.0.0.1:$FE_PORT"
KRB5_USERS="alice:alicepw bob:bobpw carol:carolpw cyrus:cyruspw mupdateuser:mupdatepw"
KRB5_SERVICES="imap/localhost imap/127.0.0.1 mupdate/localhost mupdate/127.0.0.1 mupdate/mupdate-master"

# The mail clients the real-client tests (integration/clients*_test.go) run through imapfront.
CLIENT_PACKAGES="isync offlineimap3 fetchmail curl neomutt tmux python3"
# Packages. Dovecot itself is not among them: cyrus-imapd Conflicts with imap-server, so Dovecot is unpacked
# into $CACHE and run in a mount namespace (interop/dovecot.md section 1); its libraries are installed normally.
PACKAGES="cyrus-imapd cyrus-murder cyrus-admin cyrus-clients sasl2-bin libsasl2-modules libsasl2-modules-db
  libsasl2-modules-gssapi-mit krb5-kdc krb5-admin-server krb5-user rsyslog openssl ca-certificates
  util-linux iproute2 ssl-cert libexttextcat-2.0-0 liblua5.4-0 libsodium23 libstemmer0d libunwind8 libwrap0
  libicu72 libapparmor1 libcap2 libtirpc3 libssl3 libzstd1 liblz4-1 libbz2-1.0 liblzma5 zlib1g libpam0g
  $CLIENT_PACKAGES $PROTO_PACKAGES"
DOVECOT_DEBS="dovecot-core dovecot-imapd"
DOVECOT_ROOT=$CACHE/dovecot/root
DOVECOT_EXTRA_ROOT=$CACHE/dovecot/extra-root

# --- mupdated (issue 21): a second Murder whose MUPDATE master is a 3-member mupdated cluster on embedded etcd,
# behind HAProxy as the one address its Cyrus servers take. Cyrus backend be3 and Cyrus front end fe3 use it;
# the Cyrus master above and be1/be2/fe are untouched. Tests: integration/mupdated_test.go.
MUPDATED_HA_PORT=$((13920 + OFF))
MUPDATED_MEMBERS="1 2 3"
mupdated_port() { echo $((13920 + $1 + OFF)); }         # MUPDATE of member N
mupdated_metrics_port() { echo $((13980 + $1 + OFF)); } # /metrics /readyz of member N
mupdated_client_port() { echo $((13790 + $1 + OFF)); }  # etcd client URL of member N (below the ephemeral range for any offset up to 18,000)
mupdated_peer_port() { echo $((13800 + $1 + OFF)); }    # etcd peer URL of member N
BE3_PORT=$((12343 + OFF))
FE3_PORT=$((11343 + OFF))
FE3_MUPDATE_PORT=$((13936 + OFF))
for _n in $MUPDATED_MEMBERS; do
	PORTS="$PORTS $(mupdated_port $_n) $(mupdated_metrics_port $_n) $(mupdated_client_port $_n) $(mupdated_peer_port $_n)"
done
PORTS="$PORTS $MUPDATED_HA_PORT $BE3_PORT $FE3_PORT $FE3_MUPDATE_PORT"
CYRUS_REALMS="$CYRUS_REALMS 127.0.0.1:$BE3_PORT 127.0.0.1:$FE3_PORT"
PACKAGES="$PACKAGES haproxy"
# --- end mupdated variables

T0=$(date +%s.%N)
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}'; }
log() { printf '[run.sh %5ss] %s\n' "$(elapsed "$T0")" "$*" >&2; }
die() {
	log "ERROR: $*"
	exit 1
}

# One EXIT trap for every sub-command: when STOP_ON_EXIT is set (a failing 'up', or the whole
# up+test+down run), everything the lab started is stopped, also on Ctrl-C or TERM.
LAB=""
STOP_ON_EXIT=""
on_exit() {
	local rc=$?
	trap - EXIT INT TERM
	if [ -n "$STOP_ON_EXIT" ] && [ -n "$LAB" ]; then
		[ "$rc" = 0 ] || log "exit status $rc: stopping the lab"
		stop_lab "$LAB"
	fi
	exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

need_root() { [ "$(id -u)" = 0 ] || die "must run as root (it installs packages and starts servers that drop privileges)"; }

# ---------------------------------------------------------------------------------------------------------
# install

pkgs_missing() { # one dpkg-query for all (each call costs up to a second on a busy machine)
	local installed p
	# dpkg-query exits 1 when a package is unknown to it: that is the answer, not an error.
	installed=" $({ dpkg-query -W -f='${db:Status-Status}:${Package} ' $PACKAGES 2>/dev/null || true; } |
		tr ' ' '\n' | sed -n 's/^installed://p' | tr '\n' ' ') "
	for p in $PACKAGES; do
		case $installed in *" $p "*) ;; *) echo "$p" ;; esac
	done
}

dovecot_ready() { [ -x "$DOVECOT_ROOT/usr/sbin/dovecot" ] && [ -x "$DOVECOT_ROOT/usr/lib/dovecot/imap" ]; }

APT_UPDATED=0
apt_update_once() {
	[ "$APT_UPDATED" = 1 ] && return 0
	log "apt-get update"
	apt-get update -q >"$CACHE/apt-update.log" 2>&1 || {
		tail -20 "$CACHE/apt-update.log" >&2
		die "apt-get update failed"
	}
	APT_UPDATED=1
}

# policy-rc.d that exits 101: package scripts must not start Debian's default Cyrus, KDC or rsyslog.
with_policy_rc_d() {
	(
		local saved=""
		if [ -e /usr/sbin/policy-rc.d ]; then
			saved=$CACHE/policy-rc.d.saved
			cp -p /usr/sbin/policy-rc.d "$saved"
		fi
		restore() {
			if [ -n "$saved" ]; then mv -f "$saved" /usr/sbin/policy-rc.d; else rm -f /usr/sbin/policy-rc.d; fi
		}
		trap restore EXIT
		printf '#!/bin/sh\n# written by imapfront integration/run.sh while it installs packages\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod 755 /usr/sbin/policy-rc.d
		"$@"
	)
}

install_packages() {
	local missing
	missing=$(pkgs_missing | tr '\n' ' ')
	missing=${missing% }
	if [ -n "$missing" ]; then
		apt_update_once
		log "apt-get install $missing"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
			-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold $missing \
			</dev/null >"$CACHE/apt-install.log" 2>&1 || {
			tail -30 "$CACHE/apt-install.log" >&2
			die "apt-get install failed (full log: $CACHE/apt-install.log)"
		}
	fi
}

install_dovecot() {
	dovecot_ready && return 0
	local dl=$CACHE/dovecot/debs
	rm -rf "$dl" "$DOVECOT_ROOT.tmp"
	mkdir -p "$dl"
	log "apt-get download $DOVECOT_DEBS"
	if ! (cd "$dl" && apt-get download $DOVECOT_DEBS >"$CACHE/apt-download.log" 2>&1); then
		apt_update_once
		(cd "$dl" && apt-get download $DOVECOT_DEBS >"$CACHE/apt-download.log" 2>&1) || {
			tail -20 "$CACHE/apt-download.log" >&2
			die "apt-get download $DOVECOT_DEBS failed"
		}
	fi
	local deb
	for deb in "$dl"/*.deb; do dpkg -x "$deb" "$DOVECOT_ROOT.tmp"; done
	rm -rf "$DOVECOT_ROOT"
	mv "$DOVECOT_ROOT.tmp" "$DOVECOT_ROOT"
	dovecot_ready || die "unpacked Dovecot lacks usr/sbin/dovecot or usr/lib/dovecot/imap"
}

# --- Dovecot's lmtp, pop3, managesieve (issue 19) ---
dovecot_extra_ready() {
	[ -x "$DOVECOT_EXTRA_ROOT/usr/lib/dovecot/lmtp" ] && [ -x "$DOVECOT_EXTRA_ROOT/usr/lib/dovecot/pop3" ] &&
		[ -x "$DOVECOT_EXTRA_ROOT/usr/lib/dovecot/managesieve" ]
}

install_dovecot_extra() {
	dovecot_extra_ready && return 0
	local dl=$CACHE/dovecot/extra-debs
	rm -rf "$dl" "$DOVECOT_EXTRA_ROOT.tmp"
	mkdir -p "$dl"
	log "apt-get download $DOVECOT_EXTRA_DEBS"
	if ! (cd "$dl" && apt-get download $DOVECOT_EXTRA_DEBS >"$CACHE/apt-download-extra.log" 2>&1); then
		apt_update_once
		(cd "$dl" && apt-get download $DOVECOT_EXTRA_DEBS >"$CACHE/apt-download-extra.log" 2>&1) || {
			tail -20 "$CACHE/apt-download-extra.log" >&2
			die "apt-get download $DOVECOT_EXTRA_DEBS failed"
		}
	fi
	local deb
	for deb in "$dl"/*.deb; do dpkg -x "$deb" "$DOVECOT_EXTRA_ROOT.tmp"; done
	rm -rf "$DOVECOT_EXTRA_ROOT"
	mv "$DOVECOT_EXTRA_ROOT.tmp" "$DOVECOT_EXTRA_ROOT"
	dovecot_extra_ready || die "unpacked $DOVECOT_EXTRA_DEBS lack usr/lib/dovecot/lmtp, pop3 or managesieve"
}

install_all() {
	install_packages
	install_dovecot
	install_dovecot_extra
}

ensure_system_user() {
	id -u "$1" >/dev/null 2>&1 ||
		useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$1"
}

cmd_install() {
	need_root
	mkdir -p "$CACHE"
	local t
	t=$(date +%s.%N)
	if [ -z "$(pkgs_missing)" ] && dovecot_ready && dovecot_extra_ready; then
		log "packages already installed"
	else
		with_policy_rc_d install_all
	fi
	ensure_system_user dovecot
	ensure_system_user dovenull
	local f
	for f in $CYRUS_BIN/master $CYRUS_BIN/mupdate /usr/sbin/saslpasswd2 /usr/sbin/krb5kdc /usr/sbin/kdb5_util \
		/usr/sbin/kadmin.local /usr/bin/kinit /usr/sbin/rsyslogd /usr/bin/openssl /usr/bin/unshare \
		/usr/bin/mbsync /usr/bin/offlineimap /usr/bin/fetchmail /usr/bin/curl /usr/bin/neomutt /usr/bin/tmux /usr/bin/python3 \
		/usr/bin/swaks; do
		[ -x "$f" ] || die "$f is missing after the install step"
	done
	log "install step took $(elapsed "$t")s"
}

# ---------------------------------------------------------------------------------------------------------
# process bookkeeping: <lab>/pids lists "name pidfile comm" in start order

record() { echo "$1 $2 $3" >>"$LAB/pids"; }

pid_of() { # pidfile comm -> pid if that process is alive and is the expected program
	local pid
	[ -s "$1" ] || return 1
	pid=$(tr -dc '0-9' <"$1")
	[ -n "$pid" ] && [ -r "/proc/$pid/comm" ] || return 1
	[ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$2" ] || return 1
	echo "$pid"
}

# Server processes whose command line names the lab directory (Cyrus services and ctl_* helpers, whose
# master may have died): ours, found by pid. Only the harness's server programs, never a shell or an editor.
lab_pids() {
	local lab=$1 f pid exe
	for f in $(grep -alF "$lab/" /proc/[0-9]*/cmdline 2>/dev/null || true); do
		pid=${f#/proc/}
		pid=${pid%/cmdline}
		exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || continue
		case $exe in
		$CYRUS_BIN/* | /usr/lib/dovecot/* | /usr/sbin/dovecot | /usr/sbin/krb5kdc | /usr/sbin/rsyslogd) echo "$pid" ;;
		"$lab"/bin/mupdated) echo "$pid" ;; # mupdated (issue 21): a member a test restarted
		esac
	done
	return 0
}

alive() { # pid: exists and is not a zombie
	local st
	st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null) || return 1
	[ -n "$st" ] && [ "${st%% *}" != Z ]
}

stop_lab() {
	local lab=$1 name pidfile comm pid pids="" left i
	[ -f "$lab/pids" ] || return 0
	# reverse start order
	while read -r name pidfile comm; do
		if pid=$(pid_of "$pidfile" "$comm"); then
			kill -TERM "$pid" 2>/dev/null && pids="$pids $pid" && log "stopping $name (pid $pid)"
		fi
	done < <(tac "$lab/pids")
	for i in $(seq 1 100); do # bounded: 10 s
		left=""
		for pid in $pids; do alive "$pid" && left="$left $pid"; done
		[ -z "$left" ] && break
		sleep 0.1
	done
	for pid in $left $(lab_pids "$lab"); do
		[ "$pid" = $$ ] && continue
		log "killing leftover pid $pid ($(cat /proc/$pid/comm 2>/dev/null))"
		kill -KILL "$pid" 2>/dev/null || true
	done
	return 0
}

# ---------------------------------------------------------------------------------------------------------
# probes (bounded; each probe is a real protocol exchange, never a fixed sleep)

# banner HOST PORT REGEX: connect, read up to 8 lines, succeed when one matches REGEX.
banner() (
	exec 3<>"/dev/tcp/$1/$2" || exit 1
	for _ in 1 2 3 4 5 6 7 8; do
		IFS= read -r -t 3 line <&3 || exit 1
		line=${line%$'\r'}
		[[ $line =~ $3 ]] && exit 0
	done
	exit 1
) 2>/dev/null

tcp_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# -a, not -l: a datagram socket such as /dev/log shows as ESTAB, not UNCONN, once clients (other labs'
# Cyrus daemons) have connected to it, and -l hides it then.
unix_listening() { ss -Hxa 2>/dev/null | awk '{print $5}' | grep -qx "$1"; }

kdc_ticket() {
	env KRB5_CONFIG="$LAB/krb5/krb5.conf" KRB5CCNAME="FILE:$LAB/krb5/ccache/probe" \
		kinit -kt "$LAB/krb5/keytabs/clients.keytab" alice >/dev/null 2>&1
}

show_log() { # name
	local f=""
	case $1 in
	cyrus-* | mupdate*) f=$LAB/log/syslog ;;
	dovecot*) f=$LAB/dovecot/log/dovecot.log ;;
	kdc) f=$LAB/krb5/log/kdc.log ;;
	rsyslog) f=$LAB/log/rsyslogd.out ;;
	esac
	local inst=${1#cyrus-}
	if [ -d "$LAB/cyrus/$inst" ] && [ -s "$LAB/cyrus/$inst/run/master.log" ]; then
		echo "---- $LAB/cyrus/$inst/run/master.log (tail)" >&2
		tail -20 "$LAB/cyrus/$inst/run/master.log" >&2
	fi
	if [ "$1" = dovecot ] && [ -s "$LAB/dovecot/log/dovecot.stderr" ]; then
		echo "---- $LAB/dovecot/log/dovecot.stderr (tail)" >&2
		tail -20 "$LAB/dovecot/log/dovecot.stderr" >&2
	fi
	if [ -n "$f" ] && [ -s "$f" ]; then
		echo "---- $f (tail)" >&2
		case $1 in
		cyrus-*) grep -F "cyrus-$inst" "$f" | tail -30 >&2 || tail -30 "$f" >&2 ;;
		*) tail -30 "$f" >&2 ;;
		esac
	elif [ -n "$f" ]; then
		echo "---- no log at $f" >&2
	fi
}

# wait_for NAME PIDFILE COMM PROBE...: poll PROBE until it succeeds, the process dies, or $WAIT s pass.
wait_for() {
	local name=$1 pidfile=$2 comm=$3 t deadline n=0
	shift 3
	t=$(date +%s.%N)
	deadline=$(($(date +%s) + WAIT))
	while :; do
		if "$@"; then
			log "$name is up ($(elapsed "$t")s)"
			return 0
		fi
		n=$((n + 1))
		if [ "$pidfile" != - ] && [ "$n" -gt 20 ] && ! pid_of "$pidfile" "$comm" >/dev/null; then
			echo "server $name is not running (pidfile $pidfile); probe: $*" >&2
			show_log "$name"
			exit 1
		fi
		if [ "$(date +%s)" -ge "$deadline" ]; then
			echo "server $name did not come up within ${WAIT}s; probe: $*" >&2
			show_log "$name"
			exit 1
		fi
		sleep 0.1 # poll interval between probes
	done
}

# ---------------------------------------------------------------------------------------------------------
# lab setup

render() { # template destination
	mkdir -p "$(dirname "$2")"
	# The templates carry the default ports; an offset lab gets its own.
	sed -e "s|@LAB@|$LAB|g" -e "s|@MAILUID@|$(id -u mail)|g" \
		-e "s|127\.0\.0\.1:13905|127.0.0.1:$MUPDATE_PORT|g" -e "s|127\.0\.0\.1:13915|127.0.0.1:$MUPDATE_GSS_PORT|g" \
		-e "s|127\.0\.0\.1:12143|127.0.0.1:$BE1_PORT|g" -e "s|127\.0\.0\.1:12243|127.0.0.1:$BE2_PORT|g" \
		-e "s|127\.0\.0\.1:11143|127.0.0.1:$FE_PORT|g" -e "s|127\.0\.0\.1:13906|127.0.0.1:$FE_MUPDATE_PORT|g" \
		-e "s|port = 14143|port = $DOVECOT_PORT|" -e "s|port = 14993|port = $DOVECOT_IMAPS_PORT|" \
		-e "s|127\.0\.0\.1:18888|127.0.0.1:$KDC_PORT|g" -e "s|127\.0\.0\.1:18749|127.0.0.1:$KADMIN_PORT|g" \
		-e "s|127\.0\.0\.1:18464|127.0.0.1:$KPASSWD_PORT|g" \
		-e "s|127\.0\.0\.1:12124|127.0.0.1:$BE1_LMTP_PORT|g" -e "s|127\.0\.0\.1:12110|127.0.0.1:$BE1_POP3_PORT|g" \
		-e "s|127\.0\.0\.1:12190|127.0.0.1:$BE1_SIEVE_PORT|g" -e "s|127\.0\.0\.1:12224|127.0.0.1:$BE2_LMTP_PORT|g" \
		-e "s|127\.0\.0\.1:12210|127.0.0.1:$BE2_POP3_PORT|g" -e "s|127\.0\.0\.1:12290|127.0.0.1:$BE2_SIEVE_PORT|g" \
		-e "s|port = 14024|port = $DOVECOT_LMTP_PORT|" -e "s|port = 14110|port = $DOVECOT_POP3_PORT|" \
		-e "s|port = 14190|port = $DOVECOT_SIEVE_PORT|" "$TEMPLATES/$1" >"$2"
}

check_ports_free() {
	local p busy=""
	for p in $PORTS; do
		if [ -n "$(ss -Htlnu "( sport = :$p )" 2>/dev/null)" ]; then
			busy="$busy $p"
			ss -Htlnup "( sport = :$p )" >&2 || true
		fi
	done
	[ -z "$busy" ] || die "ports in use:$busy (another lab or server holds them; 'run.sh down' stops this harness's own)"
}

setup_rsyslog() {
	mkdir -p "$LAB/log/rsyslog"
	if [ -e /dev/log ] && unix_listening /dev/log; then
		log "a syslog daemon already owns /dev/log: Cyrus logs go there, not to $LAB/log/syslog"
		CYRUS_LOG=""
		return
	fi
	rm -f /dev/log # stale socket with no listener
	render rsyslog.conf "$LAB/rsyslog.conf"
	: >"$LAB/log/syslog"
	rsyslogd -f "$LAB/rsyslog.conf" -i "$LAB/run/rsyslogd.pid" </dev/null >"$LAB/log/rsyslogd.out" 2>&1
	record rsyslog "$LAB/run/rsyslogd.pid" rsyslogd
	wait_for rsyslog "$LAB/run/rsyslogd.pid" rsyslogd unix_listening /dev/log
	CYRUS_LOG=$LAB/log/syslog
}

setup_sasldb() {
	local db=$LAB/cyrus/sasldb2 u realm
	for realm in $CYRUS_REALMS; do
		for u in $CYRUS_USERS; do
			printf '%s' "${u#*:}" | saslpasswd2 -p -c -f "$db" -u "$realm" "${u%%:*}"
		done
	done
	chown cyrus:mail "$db"
	chmod 0640 "$db"
}

setup_cyrus() { # instance
	local i=$1 d=$LAB/cyrus/$1 s
	for s in conf/db conf/socket conf/log conf/msg conf/ptclient conf/quota conf/user conf/sieve spool sieve \
		run/socket run/proc run/lock; do
		mkdir -p "$d/$s"
	done
	render "cyrus/$i/imapd.conf" "$d/imapd.conf"
	render "cyrus/$i/cyrus.conf" "$d/cyrus.conf"
	chown -R cyrus:mail "$d"
}

start_cyrus() { # instance [VAR=value...]: the instance's own Cyrus master, which drops to user cyrus
	local i=$1 d=$LAB/cyrus/$1
	shift
	env "$@" $CYRUS_BIN/master -C "$d/imapd.conf" -M "$d/cyrus.conf" -p "$d/run/master.pid" \
		-L "$d/run/master.log" -d </dev/null
	record "cyrus-$i" "$d/run/master.pid" master
}

setup_dovecot() {
	local d=$LAB/dovecot
	mkdir -p "$d/ssl" "$d/log" "$d/mail" "$d/run" "$d/state"
	render dovecot/dovecot.conf "$d/dovecot.conf"
	render dovecot/users "$d/users"
	render dovecot/master-users "$d/master-users"
	chmod 0644 "$d/users" "$d/master-users"
	chown mail:mail "$d/mail"
	# a private CA and a server certificate for 127.0.0.1 and localhost
	(
		cd "$d/ssl"
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 7 \
			-subj "/CN=imapfront integration CA" \
			-keyout ca.key -out ca.pem -addext basicConstraints=critical,CA:TRUE \
			-addext keyUsage=critical,keyCertSign,cRLSign
		openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=localhost" \
			-keyout key.pem -out server.csr
		printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >server.ext
		openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 7 -out cert.pem \
			-extfile server.ext
	) >"$d/log/openssl.log" 2>&1 || {
		cat "$d/log/openssl.log" >&2
		die "openssl failed"
	}
	chmod 0600 "$d/ssl/"*.key "$d/ssl/key.pem"
}

start_dovecot() {
	local d=$LAB/dovecot
	# Dovecot's binaries have /usr paths compiled in: overlay the unpacked usr on /usr, in this namespace only.
	# (unshare -m makes every mount private first, so the overlay can never show outside.)
	if ! IMAPFRONT_IT_LAB=$LAB unshare -m sh -c \
		"mount -t overlay imapfront-dovecot -o lowerdir=$DOVECOT_EXTRA_ROOT/usr:$DOVECOT_ROOT/usr:/usr /usr && exec /usr/sbin/dovecot -c $d/dovecot.conf" \
		</dev/null >>"$d/log/dovecot.stderr" 2>&1; then
		show_log dovecot
		die "Dovecot did not start (its private mount namespace with $DOVECOT_ROOT/usr overlaid on /usr failed?)"
	fi
	record dovecot "$d/run/master.pid" dovecot
}

krb5() { env KRB5_CONFIG="$LAB/krb5/krb5.conf" KRB5_KDC_PROFILE="$LAB/krb5/kdc.conf" "$@"; }

setup_kdc() {
	local k=$LAB/krb5 u s
	mkdir -p "$k/db" "$k/keytabs" "$k/log" "$k/ccache" "$k/rcache" "$k/run"
	render krb5/krb5.conf "$k/krb5.conf"
	render krb5/kdc.conf "$k/kdc.conf"
	render krb5/krb5-acceptor.conf "$k/krb5-acceptor.conf"
	: >"$k/kadm5.acl"
	krb5 kdb5_util create -s -r $REALM -P masterpw >"$k/log/kdb5_util.log" 2>&1 || {
		cat "$k/log/kdb5_util.log" >&2
		die "kdb5_util create failed"
	}
	{
		for u in $KRB5_USERS; do echo "addprinc -pw ${u#*:} ${u%%:*}"; done
		for s in $KRB5_SERVICES; do echo "addprinc -randkey $s"; done
		echo "ktadd -k $k/keytabs/services.keytab $KRB5_SERVICES"
		printf 'ktadd -norandkey -k %s/keytabs/clients.keytab' "$k"
		for u in $KRB5_USERS; do printf ' %s' "${u%%:*}"; done
		echo
	} | krb5 kadmin.local -r $REALM >"$k/log/kadmin.log" 2>&1 || {
		cat "$k/log/kadmin.log" >&2
		die "kadmin.local failed"
	}
	grep -q "Entry for principal mupdate/mupdate-master" "$k/log/kadmin.log" || {
		cat "$k/log/kadmin.log" >&2
		die "kadmin.local did not write the services keytab"
	}
	# Cyrus (user cyrus) reads the services keytab and writes its replay cache
	chown cyrus:mail "$k/keytabs/services.keytab" "$k/keytabs/clients.keytab" "$k/rcache"
	chmod 0640 "$k/keytabs/services.keytab" "$k/keytabs/clients.keytab"
	chmod 0755 "$k" "$k/keytabs"
}

start_kdc() {
	krb5 krb5kdc -r $REALM -P "$LAB/krb5/run/krb5kdc.pid" </dev/null >"$LAB/krb5/log/krb5kdc.out" 2>&1
	record kdc "$LAB/krb5/run/krb5kdc.pid" krb5kdc
}

write_env() {
	local f=$LAB/env.sh
	cat >"$f" <<EOF
# Written by integration/run.sh up; source it, then go test -tags integration ./integration/...
export IMAPFRONT_IT_LAB=$LAB
export IMAPFRONT_IT_MUPDATE=127.0.0.1:$MUPDATE_PORT
export IMAPFRONT_IT_MUPDATE_USER=mupdateuser
export IMAPFRONT_IT_MUPDATE_PASS=mupdatepw
export IMAPFRONT_IT_MUPDATE_PIDFILE=$LAB/cyrus/mupdate/run/master.pid
export IMAPFRONT_IT_MUPDATE_GSSAPI=127.0.0.1:$MUPDATE_GSS_PORT
export IMAPFRONT_IT_MUPDATE_GSSAPI_HOST=localhost
export IMAPFRONT_IT_CYRUS_BE1=127.0.0.1:$BE1_PORT
export IMAPFRONT_IT_CYRUS_BE2=127.0.0.1:$BE2_PORT
export IMAPFRONT_IT_CYRUS_FE=127.0.0.1:$FE_PORT
export IMAPFRONT_IT_CYRUS_FE_MUPDATE=127.0.0.1:$FE_MUPDATE_PORT
export IMAPFRONT_IT_CYRUS_ADMIN_USER=cyrus
export IMAPFRONT_IT_CYRUS_ADMIN_PASS=cyruspw
export IMAPFRONT_IT_CYRUS_LOG=$CYRUS_LOG
export IMAPFRONT_IT_DOVECOT=127.0.0.1:$DOVECOT_PORT
export IMAPFRONT_IT_DOVECOT_IMAPS=127.0.0.1:$DOVECOT_IMAPS_PORT
export IMAPFRONT_IT_DOVECOT_CA=$LAB/dovecot/ssl/ca.pem
export IMAPFRONT_IT_DOVECOT_MASTER_USER=proxy
export IMAPFRONT_IT_DOVECOT_MASTER_PASS=proxypw
export IMAPFRONT_IT_DOVECOT_LOG=$LAB/dovecot/log/dovecot.log
export IMAPFRONT_IT_KDC=127.0.0.1:$KDC_PORT
export IMAPFRONT_IT_KRB5_CONFIG=$LAB/krb5/krb5.conf
export IMAPFRONT_IT_KRB5_REALM=$REALM
export IMAPFRONT_IT_KRB5_SERVICES_KEYTAB=$LAB/krb5/keytabs/services.keytab
export IMAPFRONT_IT_KRB5_CLIENTS_KEYTAB=$LAB/krb5/keytabs/clients.keytab
export IMAPFRONT_IT_USERS="alice:alicepw:127.0.0.1:$BE1_PORT bob:bobpw:127.0.0.1:$BE2_PORT carol:carolpw:127.0.0.1:$DOVECOT_PORT"
export IMAPFRONT_IT_LOCAL_USERS="dave:davepw:127.0.0.1:$DOVECOT_PORT"
EOF
	chmod 0644 "$f"
}

# --- mupdated (issue 21) lab functions

# be3 and fe3 are be1 and fe with their own ports, directories and syslog prefix, and mupdated as master.
setup_mupdated_murder() {
	local i from d s
	for i in be3 fe3; do
		from=${i%3}
		[ "$from" = be ] && from=be1
		d=$LAB/cyrus/$i
		for s in conf/db conf/socket conf/log conf/msg conf/ptclient conf/quota conf/user conf/sieve spool sieve \
			run/socket run/proc run/lock; do
			mkdir -p "$d/$s"
		done
		for s in imapd.conf cyrus.conf; do
			render "cyrus/$from/$s" "$d/$s.tmp"
			sed -e "s|/cyrus/$from/|/cyrus/$i/|g" -e "s|syslog_prefix: cyrus-$from\$|syslog_prefix: cyrus-$i|" \
				-e "s|127\.0\.0\.1:$MUPDATE_PORT\$|127.0.0.1:$MUPDATED_HA_PORT|" \
				-e "s|127\.0\.0\.1:$BE1_PORT|127.0.0.1:$BE3_PORT|g" -e "s| 127\.0\.0\.1:$BE2_PORT||" \
				-e "s|127\.0\.0\.1:$FE_PORT|127.0.0.1:$FE3_PORT|g" \
				-e "s|127\.0\.0\.1:$FE_MUPDATE_PORT|127.0.0.1:$FE3_MUPDATE_PORT|g" \
				-e '/^  \(lmtp\|pop3\|sieve\)  *cmd=/d' "$d/$s.tmp" >"$d/$s" # be1's TCP LMTP/POP3/Sieve ports are be1's
			rm -f "$d/$s.tmp"
		done
		chown -R cyrus:mail "$d"
	done
	local n cluster=""
	for n in $MUPDATED_MEMBERS; do
		cluster="$cluster${cluster:+,}m$n=http://127.0.0.1:$(mupdated_peer_port "$n")"
	done
	for n in $MUPDATED_MEMBERS; do
		d=$LAB/mupdated/$n
		mkdir -p "$d/data"
		cat >"$d/mupdated.toml" <<EOF
# mupdated member $n of the integration lab (written by run.sh)
listen = "127.0.0.1:$(mupdated_port "$n")"
server_name = "mupdated-$n"
metrics = "127.0.0.1:$(mupdated_metrics_port "$n")"
failed_login_pause = "1s"
op_timeout = "5s"
[admins]
mupdateuser = "mupdatepw"
[embed]
dir = "$d/data"
name = "m$n"
client_url = "http://127.0.0.1:$(mupdated_client_port "$n")"
peer_url = "http://127.0.0.1:$(mupdated_peer_port "$n")"
initial_cluster = "$cluster"
cluster_token = "imapfront-it"
start_timeout = "${WAIT}s"
EOF
	done
	{
		printf 'global\n\tdaemon\n\tpidfile %s/run/haproxy.pid\n' "$LAB"
		# a connection refused by a dead member is retried on another (redispatch) before the health check notices
		printf 'defaults\n\tmode tcp\n\tretries 3\n\toption redispatch\n\ttimeout connect 2s\n\ttimeout client 3h\n\ttimeout server 3h\n\ttimeout check 2s\n'
		printf 'frontend mupdate\n\tbind 127.0.0.1:%s\n\tdefault_backend mupdated\n' "$MUPDATED_HA_PORT"
		printf 'backend mupdated\n\toption httpchk GET /readyz\n\thttp-check expect status 200\n'
		printf '\tdefault-server inter 300ms fall 2 rise 1 on-marked-down shutdown-sessions\n'
		for n in $MUPDATED_MEMBERS; do
			printf '\tserver m%s 127.0.0.1:%s check port %s\n' "$n" "$(mupdated_port "$n")" "$(mupdated_metrics_port "$n")"
		done
	} >"$LAB/haproxy.cfg"
}

# start_mupdated_member N: (re)start member N in the background; its pid goes to its pidfile.
start_mupdated_member() {
	local d=$LAB/mupdated/$1
	setsid "$LAB/bin/mupdated" -config "$d/mupdated.toml" </dev/null >>"$d/mupdated.log" 2>&1 &
	echo $! >"$d/pid"
}

start_mupdated_murder() {
	local n
	for n in $MUPDATED_MEMBERS; do
		start_mupdated_member "$n"
		record "mupdated-$n" "$LAB/mupdated/$n/pid" mupdated
	done
	for n in $MUPDATED_MEMBERS; do # the members form the cluster together: wait after starting all three
		wait_for "mupdated-$n" "$LAB/mupdated/$n/pid" mupdated \
			banner 127.0.0.1 "$(mupdated_port "$n")" '^\* OK MUPDATE "mupdated-'"$n"'" .*"\(master\)"'
	done
	haproxy -f "$LAB/haproxy.cfg" </dev/null >"$LAB/log/haproxy.out" 2>&1 || {
		cat "$LAB/log/haproxy.out" >&2
		die "haproxy did not start"
	}
	record haproxy "$LAB/run/haproxy.pid" haproxy
	wait_for haproxy "$LAB/run/haproxy.pid" haproxy banner 127.0.0.1 $MUPDATED_HA_PORT '^\* OK MUPDATE "mupdated-'
	# backends push their mailbox list at start and exit if the master is not there: start them after it
	start_cyrus be3
	start_cyrus fe3
	wait_for cyrus-be3 "$LAB/cyrus/be3/run/master.pid" master banner 127.0.0.1 $BE3_PORT '^\* OK .*Cyrus IMAP'
	wait_for cyrus-fe3 "$LAB/cyrus/fe3/run/master.pid" master banner 127.0.0.1 $FE3_PORT '^\* OK .*Cyrus IMAP'
	wait_for cyrus-fe3 "$LAB/cyrus/fe3/run/master.pid" master \
		banner 127.0.0.1 $FE3_MUPDATE_PORT '^\* OK MUPDATE .*"mupdate://127\.0\.0\.1:'$MUPDATED_HA_PORT'"'
}

write_env_mupdated() {
	local n members="" pidfiles="" configs="" metrics=""
	for n in $MUPDATED_MEMBERS; do
		members="$members${members:+ }127.0.0.1:$(mupdated_port "$n")"
		metrics="$metrics${metrics:+ }127.0.0.1:$(mupdated_metrics_port "$n")"
		pidfiles="$pidfiles${pidfiles:+ }$LAB/mupdated/$n/pid"
		configs="$configs${configs:+ }$LAB/mupdated/$n/mupdated.toml"
	done
	cat >>"$LAB/env.sh" <<EOF
# mupdated (issue 21): the second Murder (be3, fe3) on a 3-member mupdated cluster behind HAProxy
export IMAPFRONT_IT_MUPDATED=127.0.0.1:$MUPDATED_HA_PORT
export IMAPFRONT_IT_MUPDATED_MEMBERS="$members"
export IMAPFRONT_IT_MUPDATED_METRICS="$metrics"
export IMAPFRONT_IT_MUPDATED_PIDFILES="$pidfiles"
export IMAPFRONT_IT_MUPDATED_CONFIGS="$configs"
export IMAPFRONT_IT_MUPDATED_BIN=$LAB/bin/mupdated
export IMAPFRONT_IT_IMAPFRONT_BIN=$LAB/bin/imapfront
export IMAPFRONT_IT_CYRUS_BE3=127.0.0.1:$BE3_PORT
export IMAPFRONT_IT_CYRUS_FE3=127.0.0.1:$FE3_PORT
export IMAPFRONT_IT_CYRUS_FE3_MUPDATE=127.0.0.1:$FE3_MUPDATE_PORT
EOF
}
# --- end mupdated lab functions

# --- LMTP, POP3 and ManageSieve of the backends (issue 19) ---
wait_protocols() {
	local p
	for p in $BE1_LMTP_PORT $BE1_POP3_PORT $BE1_SIEVE_PORT; do
		wait_for cyrus-be1 "$LAB/cyrus/be1/run/master.pid" master tcp_open 127.0.0.1 "$p"
	done
	for p in $BE2_LMTP_PORT $BE2_POP3_PORT $BE2_SIEVE_PORT; do
		wait_for cyrus-be2 "$LAB/cyrus/be2/run/master.pid" master tcp_open 127.0.0.1 "$p"
	done
	for p in $DOVECOT_LMTP_PORT $DOVECOT_POP3_PORT $DOVECOT_SIEVE_PORT; do
		wait_for dovecot "$LAB/dovecot/run/master.pid" dovecot tcp_open 127.0.0.1 "$p"
	done
}

write_env_protocols() {
	cat >>"$LAB/env.sh" <<EOF
# LMTP, POP3, ManageSieve of the backends, as "server=host:port" by MUPDATE server name (issue 19)
export IMAPFRONT_IT_LMTP="127.0.0.1:$BE1_PORT=127.0.0.1:$BE1_LMTP_PORT 127.0.0.1:$BE2_PORT=127.0.0.1:$BE2_LMTP_PORT 127.0.0.1:$DOVECOT_PORT=127.0.0.1:$DOVECOT_LMTP_PORT"
export IMAPFRONT_IT_POP3="127.0.0.1:$BE1_PORT=127.0.0.1:$BE1_POP3_PORT 127.0.0.1:$BE2_PORT=127.0.0.1:$BE2_POP3_PORT 127.0.0.1:$DOVECOT_PORT=127.0.0.1:$DOVECOT_POP3_PORT"
export IMAPFRONT_IT_SIEVE="127.0.0.1:$BE1_PORT=127.0.0.1:$BE1_SIEVE_PORT 127.0.0.1:$BE2_PORT=127.0.0.1:$BE2_SIEVE_PORT 127.0.0.1:$DOVECOT_PORT=127.0.0.1:$DOVECOT_SIEVE_PORT"
EOF
}

# --- issue 20 (mupdatectl move): users of the move tests' own, so that moving accounts around never
# touches the fixture users. They exist in every Cyrus realm and in Dovecot, with no mailbox: each
# test creates its account and removes it. ---
MOVE_USERS="mover:moverpw mover2:mover2pw"

setup_move_users() {
	local db=$LAB/cyrus/sasldb2 u realm
	for realm in $CYRUS_REALMS; do
		for u in $MOVE_USERS; do
			printf '%s' "${u#*:}" | saslpasswd2 -p -c -f "$db" -u "$realm" "${u%%:*}"
		done
	done
	for u in $MOVE_USERS; do
		printf '%s:{PLAIN}%s::::::\n' "${u%%:*}" "${u#*:}" >>"$LAB/dovecot/users"
	done
}

write_move_env() {
	echo "export IMAPFRONT_IT_MOVE_USERS=\"$MOVE_USERS\"" >>"$LAB/env.sh"
}
# --- end of issue 20 ---

go_build() { # output package
	(cd "$REPO" && go build -o "$1" "$2")
}

cmd_up() {
	need_root
	local t_all t
	t_all=$(date +%s.%N)
	cmd_install
	mkdir -p -m 0755 "$ROOT"
	chmod 0755 "$ROOT"
	# leftovers of earlier runs: stop them by their recorded pids, then drop their directories
	local old
	for old in "$ROOT"/lab.*; do
		[ -d "$old" ] || continue
		stop_lab "$old"
		rm -rf "$old"
	done
	rm -f "$ROOT/current"
	check_ports_free

	t=$(date +%s.%N)
	LAB=$(mktemp -d "$ROOT/lab.XXXXXX")
	chmod 0755 "$LAB"
	mkdir -p "$LAB/log" "$LAB/run" "$LAB/bin" "$LAB/cyrus"
	: >"$LAB/pids"
	ln -sfn "$LAB" "$ROOT/current"
	log "lab $LAB"
	STOP_ON_EXIT=1 # until everything is up and seeded

	# seed program, built while nothing else runs yet (go build is the slowest part of a warm start)
	go_build "$LAB/bin/seed" ./integration/seed &
	local build_pid=$!
	( go_build "$LAB/bin/mupdated" ./cmd/mupdated && go_build "$LAB/bin/imapfront" ./cmd/imapfront ) & # mupdated (issue 21)
	local mupdated_build_pid=$!

	setup_rsyslog
	setup_sasldb
	log "sasldb written"
	local i
	for i in mupdate be1 be2 fe mupdate-gss; do setup_cyrus "$i"; done
	setup_mupdated_murder # mupdated (issue 21)
	setup_dovecot
	setup_move_users
	log "Cyrus and Dovecot configured, certificates made"
	setup_kdc
	log "KDC database and keytabs made"
	log "configuration written ($(elapsed "$t")s)"

	t=$(date +%s.%N)
	start_cyrus mupdate
	start_kdc
	start_dovecot
	wait_for cyrus-mupdate "$LAB/cyrus/mupdate/run/master.pid" master \
		banner 127.0.0.1 $MUPDATE_PORT '^\* OK MUPDATE .*"\(master\)"'
	# backends push their mailbox list at start and exit if the master is not there: start them after it
	start_cyrus be1
	start_cyrus be2
	start_cyrus fe
	start_cyrus mupdate-gss KRB5_CONFIG="$LAB/krb5/krb5.conf:$LAB/krb5/krb5-acceptor.conf" \
		KRB5RCACHEDIR="$LAB/krb5/rcache" KRB5_KTNAME="FILE:$LAB/krb5/keytabs/services.keytab"
	wait_for cyrus-be1 "$LAB/cyrus/be1/run/master.pid" master banner 127.0.0.1 $BE1_PORT '^\* OK .*Cyrus IMAP'
	wait_for cyrus-be2 "$LAB/cyrus/be2/run/master.pid" master banner 127.0.0.1 $BE2_PORT '^\* OK .*Cyrus IMAP'
	wait_for cyrus-fe "$LAB/cyrus/fe/run/master.pid" master banner 127.0.0.1 $FE_PORT '^\* OK .*Cyrus IMAP'
	wait_for cyrus-fe "$LAB/cyrus/fe/run/master.pid" master \
		banner 127.0.0.1 $FE_MUPDATE_PORT '^\* OK MUPDATE .*"mupdate://127\.0\.0\.1:'$MUPDATE_PORT'"'
	wait_for dovecot "$LAB/dovecot/run/master.pid" dovecot banner 127.0.0.1 $DOVECOT_PORT '^\* OK .*Dovecot'
	wait_for dovecot "$LAB/dovecot/run/master.pid" dovecot tcp_open 127.0.0.1 $DOVECOT_IMAPS_PORT
	wait_for kdc "$LAB/krb5/run/krb5kdc.pid" krb5kdc kdc_ticket
	wait_for cyrus-mupdate-gss "$LAB/cyrus/mupdate-gss/run/master.pid" master \
		banner 127.0.0.1 $MUPDATE_GSS_PORT '^\* AUTH "GSSAPI"$'
	wait "$mupdated_build_pid" || die "go build ./cmd/mupdated ./cmd/imapfront failed" # mupdated (issue 21)
	start_mupdated_murder
	wait_protocols
	log "all servers up ($(elapsed "$t")s)"

	write_env
	write_env_mupdated # mupdated (issue 21)
	write_env_protocols
	write_move_env
	wait "$build_pid" || die "go build ./integration/seed failed"
	t=$(date +%s.%N)
	(
		set -a
		. "$LAB/env.sh"
		"$LAB/bin/seed"
	) || {
		show_log cyrus-be1
		die "seeding failed"
	}
	log "users, mailboxes and messages seeded ($(elapsed "$t")s)"
	[ "$MODE" = all ] || STOP_ON_EXIT=""
	log "up took $(elapsed "$t_all")s"
	echo "$LAB/env.sh"
}

current_lab() {
	[ -L "$ROOT/current" ] || [ -d "$ROOT/current" ] || return 1
	readlink -f "$ROOT/current"
}

cmd_down() {
	need_root
	local lab=${1:-}
	[ -n "$lab" ] || lab=$(current_lab) || {
		log "no current lab under $ROOT"
		return 0
	}
	LAB=$lab
	stop_lab "$lab"
	log "stopped $lab (its logs stay there until the next up)"
}

# The packages of the real-server run: ./integration/... and every other package that has test files
# with the integration build tag (e.g. gssapi), unless IMAPFRONT_IT_PACKAGES names them.
it_packages() {
	if [ -n "${IMAPFRONT_IT_PACKAGES:-}" ]; then
		echo "$IMAPFRONT_IT_PACKAGES"
		return
	fi
	local dirs
	dirs=$(cd "$REPO" && git ls-files '*_test.go' 2>/dev/null | grep -v '^integration/' |
		xargs -r grep -l '^//go:build.*\bintegration\b' 2>/dev/null | xargs -r -n1 dirname | sort -u |
		sed 's|^|./|' | tr '\n' ' ') || true
	echo "./integration/... $dirs"
}

cmd_test() {
	local lab pkgs
	lab=$(current_lab) || die "no lab is up: run '$0 up' first"
	[ -f "$lab/env.sh" ] || die "$lab/env.sh is missing: run '$0 up' first"
	set -a
	# shellcheck disable=SC1091
	. "$lab/env.sh"
	set +a
	cd "$REPO"
	pkgs=$(it_packages)
	log "go test -tags integration -count=1 $* $pkgs"
	# shellcheck disable=SC2086
	go test -tags integration -count=1 "$@" $pkgs
}

cmd_status() {
	local lab name pidfile comm pid
	lab=$(current_lab) || {
		echo "no current lab under $ROOT"
		return 0
	}
	echo "lab $lab"
	while read -r name pidfile comm; do
		if pid=$(pid_of "$pidfile" "$comm"); then echo "  $name: running, pid $pid"; else echo "  $name: stopped"; fi
	done <"$lab/pids"
}

cmd_all() {
	need_root
	MODE=all
	cmd_up >/dev/null
	cmd_test "$@"
}

MODE=${1:-}
case ${1:-} in
up) cmd_up ;;
down)
	shift
	cmd_down "$@"
	;;
test)
	shift
	cmd_test "$@"
	;;
install) cmd_install ;;
status) cmd_status ;;
"" | -*) cmd_all "$@" ;;
*)
	echo "usage: $0 [up | down [lab] | test [go test args] | install | status | [go test args]]" >&2
	exit 2
	;;
esac
