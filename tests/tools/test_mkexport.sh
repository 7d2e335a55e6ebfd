#!/bin/sh
# test_mkexport.sh: pv-mkexport output layout, json fragment contents and byte-reproducibility.
# Runs against $PV_BIN/pv-mkexport (the copy in the build tree).
set -eu
bin=${PV_BIN:?PV_BIN must point at build/bin}
work=$(mktemp -d "${TMPDIR:-/tmp}/pvtest-mkexport.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
fail() { echo "FAIL: $*" >&2; exit 1; }

src=$work/src
mkdir "$src"
printf '{"#spec":"service-manifest-run@1","name":"c1","type":"lxc","zeta":1,"alpha":2}\n' >"$src/run.json"
printf '{"#spec":"service-manifest-xconnect@1","services":[]}' >"$src/services.json"
printf 'lxc.init.cmd = /bin/sh\n' >"$src/lxc.container.conf"
head -c 4096 /dev/urandom >"$src/root.squashfs"
cp "$src/root.squashfs" "$src/copy.bin" # same content: one object only

"$bin/pv-mkexport" c1 "$src" "$work/a.tgz" || fail "pv-mkexport failed"
sleep 1
touch "$src/root.squashfs" "$src/run.json"
"$bin/pv-mkexport" c1 "$src" "$work/b.tgz" || fail "pv-mkexport (second run) failed"
cmp -s "$work/a.tgz" "$work/b.tgz" || fail "output is not byte-reproducible"

# gzip header carries no name and no mtime (gzip -n): bytes 4..7 are the mtime
mt=$(od -An -tx1 -j4 -N4 "$work/a.tgz" | tr -d ' \n')
[ "$mt" = 00000000 ] || fail "gzip mtime is $mt"

entries=$(tar -tzf "$work/a.tgz")
sha=$(sha256sum "$src/root.squashfs" | cut -d' ' -f1)
csha=$(sha256sum "$src/lxc.container.conf" | cut -d' ' -f1)
expect=$(printf 'json\n%s\n' "$(printf 'objects/%s\nobjects/%s\n' "$sha" "$csha" | LC_ALL=C sort)")
[ "$entries" = "$expect" ] || fail "entries differ: got [$entries] want [$expect]"

tar -tvzf "$work/a.tgz" | while read -r mode owner size date time name; do
	[ "$owner" = 0/0 ] || fail "$name owner $owner"
	[ "$date" = 1970-01-01 ] || fail "$name date $date"
	: "$mode $size $time"
done

tar -xzOf "$work/a.tgz" json >"$work/json"
keys=$(jq -r 'keys_unsorted | join(" ")' "$work/json")
[ "$keys" = "c1/copy.bin c1/lxc.container.conf c1/root.squashfs c1/run.json c1/services.json" ] ||
	fail "keys: $keys"
[ "$(jq -r '."c1/root.squashfs"' "$work/json")" = "$sha" ] || fail "root.squashfs sha"
[ "$(jq -r '."c1/copy.bin"' "$work/json")" = "$sha" ] || fail "copy.bin sha"
[ "$(jq -r '."c1/run.json".name' "$work/json")" = c1 ] || fail "run.json not inline"
# inner key order of a json file is preserved (not re-sorted)
[ "$(jq -r '."c1/run.json" | keys_unsorted | join(",")' "$work/json")" = "#spec,name,type,zeta,alpha" ] ||
	fail "run.json key order changed"
jq -e 'has("#spec") | not' "$work/json" >/dev/null || fail "fragment must not carry #spec"
# the object's bytes are the file's bytes
tar -xzOf "$work/a.tgz" "objects/$sha" | cmp -s - "$src/root.squashfs" || fail "object content"

# errors: invalid json and a bad name are refused without leaving output
printf '{bad' >"$src/broken.json"
if "$bin/pv-mkexport" c1 "$src" "$work/c.tgz" 2>"$work/err"; then fail "accepted invalid json"; fi
grep -q broken.json "$work/err" || fail "error does not name the file: $(cat "$work/err")"
[ ! -e "$work/c.tgz" ] || fail "left output behind on error"
rm "$src/broken.json"
if "$bin/pv-mkexport" ../x "$src" "$work/d.tgz" 2>/dev/null; then fail "accepted name ../x"; fi

# pv-mkimage -> pv-mkexport: the image dir has what an export needs and run.json what was asked
command -v mksquashfs >/dev/null && command -v unsquashfs >/dev/null || fail "squashfs-tools missing"
printf '{"#spec":"service-manifest-xconnect@1","services":[]}' >"$work/svc.json"
"$bin/pv-mkimage" --name img1 --out "$work/img" --bin /usr/bin/sha256sum --copy "$work/svc.json:/etc/x.json" \
	--services "$work/svc.json" --group app --roles mgmt,nobody --restart-policy container \
	--status-goal READY --run-json-extra '{"volumes":["data.squashfs"]}' --init 'echo hi; sleep 5' ||
	fail "pv-mkimage failed"
for f in root.squashfs lxc.container.conf run.json services.json; do
	[ -f "$work/img/$f" ] || fail "pv-mkimage: no $f"
done
r=$work/img/run.json
[ "$(jq -r '."#spec"' "$r")" = service-manifest-run@1 ] || fail "run.json #spec"
[ "$(jq -c '[.name,.type,.config,."root-volume",.group,.roles,.restart_policy,.status_goal,.volumes]' "$r")" = \
	'["img1","lxc","lxc.container.conf","root.squashfs","app",["mgmt","nobody"],"container","READY",["data.squashfs"]]' ] ||
	fail "run.json fields: $(cat "$r")"
[ "$(jq -r '.storage."lxc-overlay".persistence' "$r")" = boot ] || fail "run.json storage"
c=$work/img/lxc.container.conf
grep -qx 'lxc.init.cmd = /sbin/pv-init' "$c" || fail "lxc.init.cmd"
grep -qx 'lxc.namespace.keep = net ipc user' "$c" || fail "namespace.keep"
grep -q 'lxc.rootfs' "$c" && fail "conf must leave lxc.rootfs to the engine"
unsquashfs -l "$work/img/root.squashfs" >"$work/ls" || fail "unsquashfs"
for p in bin/sh bin/busybox etc/passwd etc/group sbin/pv-init usr/bin/sha256sum etc/x.json; do
	grep -qx "squashfs-root/$p" "$work/ls" || fail "root.squashfs lacks /$p"
done
# the copied binary's libraries came along (the dynamic loader at least)
loader=$(ldd /usr/bin/sha256sum | awk '/ld-linux/ { print $1 }')
grep -qx "squashfs-root$loader" "$work/ls" || fail "root.squashfs lacks the loader $loader"
grep -q 'echo hi; sleep 5' "$work/img/rootfs/sbin/pv-init" || fail "--init text not in pv-init"
grep -q "^root:x:0:0:" "$work/img/rootfs/etc/passwd" && grep -q "^nobody:" "$work/img/rootfs/etc/passwd" ||
	fail "passwd"
"$bin/pv-mkexport" img1 "$work/img" "$work/img.tgz" || fail "export of the image"
tar -xzOf "$work/img.tgz" json | jq -e '."img1/services.json".services == [] and (."img1/root.squashfs" | length) == 64' \
	>/dev/null || fail "export of the image: json"
if "$bin/pv-mkimage" --name x --out "$work/bad" --run-json-extra '[1]' 2>/dev/null; then
	fail "accepted a non-object --run-json-extra"
fi
echo "ok test_mkexport"
