#!/bin/sh
# test_pvstate.sh: the pvstate tool over every state fixture (valid: exit 0 and the summary line;
# invalid: exit 1 and the fixture's .expect message), stdin, show, graph and usage errors.
set -eu
bin=${PV_BIN:?PV_BIN must point at build/bin}
fx=${PV_FIXTURES:?PV_FIXTURES must point at tests/fixtures}
src=${PV_SRC:?PV_SRC must point at the source tree}
pv=$bin/pvstate
work=$(mktemp -d "${TMPDIR:-/tmp}/pvtest-pvstate.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
fail() { echo "FAIL: $*" >&2; exit 1; }

nvalid=0
for f in "$fx"/states/valid/*.json; do
	opt=
	case $(basename "$f") in appengine-*) opt=--appengine ;; esac
	rc=0
	"$pv" check $opt "$f" >"$work/out" 2>"$work/err" || rc=$?
	[ "$rc" = 0 ] || fail "$f: exit $rc: $(cat "$work/err")"
	grep -q "^$f: valid ([0-9]* containers, [0-9]* objects)$" "$work/out" ||
		fail "$f: summary line: $(cat "$work/out")"
	[ ! -s "$work/err" ] || fail "$f: stderr not empty"
	nvalid=$((nvalid + 1))
done

ninvalid=0
for f in "$fx"/states/invalid/*.json; do
	want=$(cat "${f%.json}.expect")
	rc=0
	"$pv" check "$f" >"$work/out" 2>"$work/err" || rc=$?
	[ "$rc" = 1 ] || fail "$f: exit $rc, want 1"
	grep -qF -- "$want" "$work/err" || fail "$f: stderr lacks '$want': $(cat "$work/err")"
	[ ! -s "$work/out" ] || fail "$f: stdout not empty on an invalid state"
	# every line names the file it came from
	if grep -v "^$f: " "$work/err" | grep -q .; then fail "$f: a line without the file prefix"; fi
	ninvalid=$((ninvalid + 1))
done
[ "$nvalid" -ge 10 ] || fail "only $nvalid valid fixtures"
[ "$ninvalid" -ge 50 ] || fail "only $ninvalid invalid fixtures"

# every error on its own line: three problems, three lines
"$pv" check "$fx/states/invalid/many-errors.json" 2>"$work/err" && fail "many-errors accepted"
[ "$(wc -l <"$work/err")" = 3 ] || fail "many-errors: want 3 lines, got $(cat "$work/err")"

# stdin
sample=$src/examples/sample-state.json
out=$("$pv" check - <"$sample") || fail "stdin check failed"
[ "$out" = "-: valid (12 containers, 41 objects)" ] || fail "stdin summary: $out"
rc=0
"$pv" check - <"$fx/states/invalid/status-goal-bad.json" 2>"$work/err" || rc=$?
[ "$rc" = 1 ] || fail "stdin invalid: exit $rc"
grep -qF -- '-: client/run.json: status_goal: "FOO" is not one of MOUNTED, STARTED, READY' \
	"$work/err" || fail "stdin invalid message: $(cat "$work/err")"
printf '' | "$pv" check - 2>"$work/err" && fail "empty stdin accepted"
grep -q "not a JSON object" "$work/err" || fail "empty stdin message"

# 100 MB on stdin: refused by size, cleanly
rc=0
{ printf '{"#spec":"pantavisor-service-system@1","a.json":"'; head -c 104857600 /dev/zero | tr '\0' a; printf '"}'; } |
	"$pv" check - 2>"$work/err" || rc=$?
[ "$rc" = 1 ] || fail "100 MB stdin: exit $rc"
grep -q "^-: state: larger than the limit of 67108864 bytes$" "$work/err" ||
	fail "100 MB stdin message: $(cat "$work/err")"

# options change validation: no bsp only with --appengine
"$pv" check "$fx/states/valid/appengine-minimal.json" 2>"$work/err" && fail "no bsp accepted"
grep -q "bsp/run.json: missing" "$work/err" || fail "bsp message"

# show: table with the resolved group and goal; --names
"$pv" show "$fx/states/valid/runlevel-defaults.json" >"$work/out" || fail "show failed"
grep -q "^alpha  *root  *STARTED  *system" "$work/out" || fail "show alpha: $(cat "$work/out")"
grep -q "^beta  *platform " "$work/out" || fail "show beta"
grep -q "runlevel mode" "$work/out" || fail "show: runlevel mode not noted"
"$pv" show --legacy-roles "$fx/states/valid/runlevel-defaults.json" | grep -q "^alpha .* mgmt " ||
	fail "show --legacy-roles: alpha not mgmt"
[ "$("$pv" show --appengine --names "$sample" | wc -l)" = 12 ] || fail "show --names"

# graph: valid JSON with the pids given
"$pv" graph --appengine --pids pv-example-unix-server=101,pv-example-unix-client=102 "$sample" \
	>"$work/graph.json" || fail "graph failed"
python3 - "$work/graph.json" <<'PY' || fail "graph content"
import json, sys
links = json.load(open(sys.argv[1]))
assert len(links) == 8, len(links)
l = [x for x in links if x["name"] == "raw-unix"][0]
assert l["consumer"] == "pv-example-unix-client" and l["consumer_pid"] == 102, l
assert l["provider_pid"] == 101 and l["socket"] == "/run/example/raw.sock", l
assert l["role"] == "any" and l["interface"] == "unix", l
PY
rc=0
"$pv" graph "$fx/states/invalid/bad-sha.json" >/dev/null 2>&1 || rc=$?
[ "$rc" = 1 ] || fail "graph of an invalid state: exit $rc"

# usage errors exit 2; --help exits 0
for args in "" "check" "frobnicate x.json" "check --bogus x.json" "check a.json b.json" \
	"graph --pids" "graph --pids nonsense x.json" "check --pids a=1 x.json"; do
	rc=0
	"$pv" $args >/dev/null 2>&1 || rc=$?
	[ "$rc" = 2 ] || fail "'pvstate $args': exit $rc, want 2"
done
"$pv" --help | grep -q "usage: pvstate check" || fail "--help"
rc=0
"$pv" check "$work/does-not-exist.json" 2>"$work/err" || rc=$?
[ "$rc" = 1 ] || fail "missing file: exit $rc"
grep -q "No such file" "$work/err" || fail "missing file message"
rc=0
"$pv" check "$work" 2>"$work/err" || rc=$?
[ "$rc" = 1 ] || fail "directory: exit $rc"
grep -q "Is a directory" "$work/err" || fail "directory message: $(cat "$work/err")"
echo "ok: $nvalid valid, $ninvalid invalid fixtures"
