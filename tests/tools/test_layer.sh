#!/bin/sh
# Tool test of the Yocto layer: scripts/check-layer passes on recipes/ + kas/, fails on broken
# copies (so the checker cannot pass silently), and the pvrexport class builds a valid pvrexport.
#
# env: PV_SRC (repository root), PV_BIN (build/bin with pv-mkexport).
# The broken copies are written with literal BitBake ${...} text, hence:
# shellcheck disable=SC2016
set -eu

src=${PV_SRC:?PV_SRC must name the repository root}
bin=${PV_BIN:-$src/build/bin}
tmp=$(mktemp -d /tmp/pv-layertest.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM HUP
fail=0

ok() { echo "ok   - $*"; }
bad() {
	echo "FAIL - $*"
	fail=1
}

# ---- 1. the layer and kas configs of this checkout pass ----
if "$src/scripts/check-layer" >"$tmp/real.log" 2>&1; then
	ok "check-layer passes on the repository ($(tail -n 1 "$tmp/real.log"))"
else
	sed 's/^/     /' "$tmp/real.log"
	bad "check-layer fails on the repository"
fi

# ---- 1b. when kas cannot be fetched the check fails; it never skips the kas half ----
if PV_KAS_CACHE="$tmp/kas-nofetch" PV_KAS_MIRROR=http://127.0.0.1:9/debian \
	"$src/scripts/check-layer" >"$tmp/nofetch.log" 2>&1; then
	bad "check-layer passed although kas could not be downloaded"
elif grep -q 'check-layer: FAIL: no trixie package list' "$tmp/nofetch.log"; then
	ok "unreachable mirror: check-layer fails ($(grep -m1 FAIL "$tmp/nofetch.log" | cut -c1-70))"
else
	sed 's/^/     /' "$tmp/nofetch.log"
	bad "unreachable mirror: failed without the download message"
fi

# ---- 2. deliberately broken copies must fail, each with its own message ----
# The tree-sitter pass costs seconds per run: it ran on the real layer above and runs on the
# unterminated-quote copy below; the other copies test our own checks.
export PV_CHECK_TS=0
# mkcopy NAME: a git work tree holding copies of recipes/ and kas/ (kas needs git).
mkcopy() {
	d="$tmp/$1"
	mkdir -p "$d"
	cp -a "$src/recipes" "$src/kas" "$d/"
	git -C "$d" init -q
	echo "$d"
}

# expect_fail NAME ONLY PATTERN [TS]: check-layer on copy NAME must fail and print PATTERN.
# Runs in the background (four at a time); judge_all waits and judges every case. TS=1 turns the
# tree-sitter pass on for this case.
pending=""
njobs=0
expect_fail() {
	printf '%s\n' "$3" >"$tmp/$1.pattern"
	(
		[ "${4:-0}" = 1 ] && PV_CHECK_TS=1
		if [ "$2" = all ]; then
			"$src/scripts/check-layer" --root "$tmp/$1" >"$tmp/$1.log" 2>&1 && rc=0 || rc=$?
		else
			"$src/scripts/check-layer" --root "$tmp/$1" --only "$2" >"$tmp/$1.log" 2>&1 &&
				rc=0 || rc=$?
		fi
		echo "$rc" >"$tmp/$1.rc"
	) &
	pending="$pending $1"
	njobs=$((njobs + 1))
	if [ "$njobs" -ge 4 ]; then
		wait
		njobs=0
	fi
}

judge_all() {
	wait
	for n in $pending; do
		pat=$(cat "$tmp/$n.pattern")
		if [ "$(cat "$tmp/$n.rc" 2>/dev/null || echo 0)" -eq 0 ]; then
			bad "$n: check-layer passed a broken layer"
		elif ! grep -q -e "$pat" "$tmp/$n.log"; then
			sed 's/^/     /' "$tmp/$n.log"
			bad "$n: failed, but without '$pat'"
		else
			ok "$n: rejected ($(grep -m1 -e "$pat" "$tmp/$n.log" | cut -c1-110))"
		fi
	done
}

ex=recipes/recipes-containers/pv-examples
pv=recipes/recipes-pv/pantavisor

d=$(mkcopy missing-file)
mkdir -p "$d/$ex/files"
echo '{}' >"$d/$ex/files/pv-example-unix-client.args.json"
printf 'SRC_URI = "file://${PN}.args.json file://${PN}.services.json"\n' >>"$d/$ex/pv-example-unix-client.bb"
expect_fail missing-file layer 'SRC_URI file://pv-example-unix-client.services.json not found'

d=$(mkcopy old-override)
sed -i 's/^RDEPENDS:${PN}:append:class-target/RDEPENDS_${PN}_append_class-target/' \
	"$d/$pv/pantavisor_git.bb"
expect_fail old-override layer 'old override syntax in variable "RDEPENDS_${PN}'

d=$(mkcopy old-override-func)
sed -i 's/^do_install:append() {/do_install_append() {/' "$d/$pv/pantavisor-examples_git.bb"
expect_fail old-override-func layer 'old override syntax in function "do_install_append"'

d=$(mkcopy missing-class)
sed -i 's/^inherit image container-pvrexport/inherit image container-pvrexprot/' \
	"$d/$ex/pv-example-container.inc"
expect_fail missing-class layer 'inherit container-pvrexprot: no classes/'

d=$(mkcopy missing-require)
sed -i 's/^require pantavisor-build.inc/require pantavisor-bild.inc/' "$d/$pv/pantavisor_git.bb"
expect_fail missing-require layer 'require pantavisor-bild.inc: file not found'

d=$(mkcopy no-license)
sed -i '/^LIC_FILES_CHKSUM/d' "$d/recipes/recipes-images/images/pantavisor-initramfs.bb"
expect_fail no-license layer 'pantavisor-initramfs.bb:0: recipe sets no LIC_FILES_CHKSUM'

d=$(mkcopy bad-varflag)
printf 'do_fetch[noexect] = "1"\n' >>"$d/$ex/pv-example-drm-render.bb"
expect_fail bad-varflag layer 'unknown varflag \[noexect\] on do_fetch'

d=$(mkcopy python-syntax)
sed -i "s/^    pc = \['engine'\]/    pc = ['engine'/" "$d/$pv/pantavisor-build.inc"
expect_fail python-syntax layer 'python function pantavisor_packageconfig does not compile'

d=$(mkcopy inline-python)
printf 'FOO = "${@bb.utils.contains(%s, d}"\n' "'A', 'b', 'c', ''" >>"$d/$ex/pv-example-drm-render.bb"
expect_fail inline-python layer 'python expression in FOO does not compile'

d=$(mkcopy shell-syntax)
printf 'broken_func () {\n\tif true; then\n\t\techo x\n}\n' >>"$d/$ex/pv-example-drm-render.bb"
expect_fail shell-syntax layer 'shell function broken_func: bash -n'

d=$(mkcopy tab-space-mix)
printf 'mixed_func () {\n\techo a\n    echo b\n}\n' >>"$d/$ex/pv-example-drm-render.bb"
expect_fail tab-space-mix layer 'shell function mixed_func indents some lines with tabs'

d=$(mkcopy layer-conf)
sed -i '/^LAYERSERIES_COMPAT_pantavisor/d' "$d/recipes/conf/layer.conf"
expect_fail layer-conf layer 'missing LAYERSERIES_COMPAT_pantavisor'

d=$(mkcopy autorev)
sed -i 's/^SRCREV = .*/SRCREV = "${AUTOREV}"/' "$d/$pv/pantavisor-source.inc"
expect_fail autorev layer 'SRCREV uses ${AUTOREV}'

d=$(mkcopy not-per-package)
printf 'RDEPENDS += "busybox"\n' >>"$d/$pv/pantavisor-examples_git.bb"
expect_fail not-per-package layer 'RDEPENDS without a package name'

d=$(mkcopy command-semicolon)
sed -i 's/^ROOTFS_POSTPROCESS_COMMAND += "pv_example_apply_image_conf"/ROOTFS_POSTPROCESS_COMMAND += "pv_example_apply_image_conf;"/' \
	"$d/$ex/pv-example-container.inc"
expect_fail command-semicolon layer 'ROOTFS_POSTPROCESS_COMMAND: separate functions with spaces'

d=$(mkcopy git-no-branch)
sed -i 's/;branch=main"/"/' "$d/$pv/pantavisor-source.inc"
expect_fail git-no-branch layer 'git SRC_URI without branch='

d=$(mkcopy unterminated-quote)
printf 'SUMMARY = "an unterminated value\n' >>"$d/$ex/pv-example-drm-render.bb"
expect_fail unterminated-quote layer 'unterminated quoted value for SUMMARY' 1

d=$(mkcopy packageconfig)
sed -i 's/^PACKAGECONFIG\[appengine\]/PACKAGECONFIG[app-engine]/' "$d/$pv/pantavisor-build.inc"
expect_fail packageconfig layer 'PACKAGECONFIG "appengine" has no PACKAGECONFIG\[appengine\]'

d=$(mkcopy bad-json)
mkdir -p "$d/$ex/files"
printf '{"PV_SERVICES_REQUIRED": [\n' >"$d/$ex/files/pv-example-drm-master.args.json"
expect_fail bad-json layer 'pv-example-drm-master.args.json:0: invalid JSON'

d=$(mkcopy kas-bad-key)
sed -i 's/^machine: qemux86-64/machin: qemux86-64/' "$d/kas/machines/qemux86-64.yaml"
expect_fail kas-bad-key kas 'kas/machines/qemux86-64.yaml: kas rejects it'

d=$(mkcopy kas-missing-include)
sed -i 's|- kas/machines/docker-x86_64.yaml|- kas/machines/docker-x86-64.yaml|' "$d/kas/appengine.yaml"
expect_fail kas-missing-include kas 'kas/appengine.yaml: kas rejects it: Configuration file not found'

d=$(mkcopy kas-wrong-machine)
sed -i 's/^machine: qemux86-64/machine: qemuarm/' "$d/kas/machines/qemux86-64.yaml"
expect_fail kas-wrong-machine kas 'machine file for qemux86-64 sets machine "qemuarm"'

d=$(mkcopy kas-duplicate-key)
printf 'local_conf_header:\n  again: |\n    FOO = "1"\n' >>"$d/kas/base.yaml"
expect_fail kas-duplicate-key kas 'duplicate key "local_conf_header"'

d=$(mkcopy kas-unpinned)
sed -i '/commit: 3dd635f613f7299d986a8ab6bc9f584370f8ed1d/d' "$d/kas/base.yaml"
expect_fail kas-unpinned kas 'repo meta-virtualization is not pinned'

d=$(mkcopy kas-old-override)
sed -i 's/^    INHERIT += "rm_work"/    DISTRO_FEATURES_append = " x11"/' "$d/kas/base.yaml"
expect_fail kas-old-override kas 'old override syntax "DISTRO_FEATURES_append"'

d=$(mkcopy kas-version)
sed -i 's/^  version: 16/  version: 99/' "$d/kas/machines/qemuarm64.yaml"
expect_fail kas-version kas 'qemuarm64.yaml: header.version is 99'

d=$(mkcopy kas-newer-key)
printf 'artifacts:\n  image: tmp/deploy/images/x.tar\n' >>"$d/kas/device.yaml"
expect_fail kas-newer-key kas 'kas/device.yaml: "artifacts" needs kas format 17'

d=$(mkcopy kas-unknown-target)
sed -i 's/^  - pantavisor-appengine-image/  - pantavisor-appengine-imag/' "$d/kas/appengine.yaml"
expect_fail kas-unknown-target kas 'target "pantavisor-appengine-imag" is not a recipe'

judge_all
if grep -q 'pv-example-unix-client.args.json not found' "$tmp/missing-file.log"; then
	bad "missing-file: an existing file:// was reported missing"
fi
if command -v node >/dev/null && command -v npm >/dev/null; then
	if grep -q 'pv-example-drm-render.bb:[0-9]*:[0-9]*: syntax error' "$tmp/unterminated-quote.log"; then
		ok "unterminated-quote: the tree-sitter grammar rejects it too"
	else
		bad "unterminated-quote: the tree-sitter grammar did not report it"
	fi
else
	echo "skip - tree-sitter BitBake grammar not run (no node/npm); not counted as passed"
fi

# ---- 3. the class's pvrexport: real class code, real mksquashfs, our pv-mkexport ----
if [ ! -x "$bin/pv-mkexport" ]; then
	bad "pv-mkexport is not in $bin (tools/scripts/pv-mkexport); cannot build a pvrexport"
else
	name="pv-example-unix-client"
	root="$tmp/rootfs"
	mkdir -p "$root/usr/bin" "$root/lib/modules/6.1.0" "$root/lib/firmware" "$tmp/deploy1" \
		"$tmp/deploy2"
	printf '#!/bin/sh\necho hi\n' >"$root/usr/bin/$name"
	chmod 0755 "$root/usr/bin/$name"
	echo module >"$root/lib/modules/6.1.0/x.ko"
	echo fw >"$root/lib/firmware/x.bin"
	runclass() {
		SOURCE_DATE_EPOCH=0 PATH="$bin:$PATH" /usr/bin/python3 \
			"$src/scripts/layercheck/runclass.py" \
			--class "$src/recipes/classes/image-pvrexport.bbclass" \
			--set PN=$name --set WORKDIR="$tmp/work$1" --set IMAGE_ROOTFS="$root" \
			--set IMGDEPLOYDIR="$tmp/deploy$1" --set IMAGE_NAME="$name-test" \
			--set PVREXPORT_SRCDIR="$src/examples/$name" --set PANTAVISOR_FEATURES= \
			--set PVREXPORT_ENTRYPOINT="/usr/bin/$name" >"$tmp/class$1.log" 2>&1
	}
	out="$tmp/deploy1/$name.pvrexport.tgz"
	if ! runclass 1; then
		sed 's/^/     /' "$tmp/class1.log"
		bad "IMAGE_CMD:pvrexport of image-pvrexport.bbclass failed"
	elif ! /usr/bin/python3 "$src/scripts/layercheck/verify_pvrexport.py" "$out" "$name" \
		--expect-key "$name/run.json" --expect-key "$name/lxc.container.conf" \
		--expect-key "$name/root.squashfs" --expect-entry "/usr/bin/$name" \
		>"$tmp/verify.log" 2>&1; then
		sed 's/^/     /' "$tmp/verify.log"
		bad "the class's pvrexport is not a valid pvrexport"
	else
		ok "class pvrexport is valid ($(wc -c <"$out") bytes, keys: $(tar -xzOf "$out" json |
			jq -r 'keys | join(" ")'))"
		# the required service from the recipe's args.json reached run.json
		req=$(tar -xzOf "$out" json | jq -r --arg k "$name/run.json" \
			'.[$k].services.required[0].name')
		if [ "$req" = raw-unix ]; then
			ok "args.json PV_SERVICES_REQUIRED -> run.json services"
		else
			bad "run.json services.required[0].name is '$req', not raw-unix"
		fi
		# kernel modules and firmware stay out of the container's squashfs
		sq=$(tar -xzOf "$out" json | jq -r --arg k "$name/root.squashfs" '.[$k]')
		tar -xzOf "$out" "objects/$sq" >"$tmp/root.squashfs"
		unsquashfs -l -d /r "$tmp/root.squashfs" >"$tmp/sq.list"
		if grep -q "^/r/usr/bin/$name$" "$tmp/sq.list" && ! grep -q '^/r/lib/modules' "$tmp/sq.list" &&
			! grep -q '^/r/lib/firmware' "$tmp/sq.list"; then
			ok "root.squashfs holds the rootfs without lib/modules and lib/firmware"
		else
			sed 's/^/     /' "$tmp/sq.list"
			bad "root.squashfs content is wrong"
		fi
		# same inputs, same bytes (BitBake exports SOURCE_DATE_EPOCH)
		if runclass 2 && cmp -s "$out" "$tmp/deploy2/$name.pvrexport.tgz"; then
			ok "two builds of the same container are byte-identical"
		else
			bad "two builds of the same container differ"
		fi
	fi
	# a provider's services.json travels inline
	pname="pv-example-unix-server"
	if SOURCE_DATE_EPOCH=0 PATH="$bin:$PATH" /usr/bin/python3 "$src/scripts/layercheck/runclass.py" \
		--class "$src/recipes/classes/image-pvrexport.bbclass" --set PN=$pname \
		--set WORKDIR="$tmp/work3" --set IMAGE_ROOTFS="$root" --set IMGDEPLOYDIR="$tmp/deploy3" \
		--set IMAGE_NAME="$pname-test" --set PVREXPORT_SRCDIR="$src/examples/$pname" \
		--set PANTAVISOR_FEATURES=squash-lz4 >"$tmp/class3.log" 2>&1 &&
		/usr/bin/python3 "$src/scripts/layercheck/verify_pvrexport.py" \
			"$tmp/deploy3/$pname.pvrexport.tgz" "$pname" --expect-key "$pname/services.json" \
			--expect-entry /sbin/init >"$tmp/verify3.log" 2>&1; then
		pol=$(tar -xzOf "$tmp/deploy3/$pname.pvrexport.tgz" json |
			jq -r --arg k "$pname/run.json" '.[$k].restart_policy')
		if [ "$pol" = container ]; then
			ok "provider pvrexport: services.json inline, lz4, restart_policy"
		else
			bad "provider run.json restart_policy is '$pol'"
		fi
	else
		sed 's/^/     /' "$tmp/class3.log" "$tmp/verify3.log" 2>/dev/null || true
		bad "provider pvrexport (services.json, squash-lz4) failed"
	fi

	# an example container recipe: image.conf lays out the rootfs and gives the entry point,
	# manifests come from the example's own directory (the examples/ tree, installed by
	# pantavisor-examples-<name>)
	xname="pv-example-dbus-server"
	xroot="$tmp/xrootfs"
	mkdir -p "$xroot/usr/lib/pantavisor/examples"
	cp -a "$src/examples/$xname" "$xroot/usr/lib/pantavisor/examples/"
	printf '#!/bin/sh\n' >"$xroot/usr/lib/pantavisor/examples/$xname/$xname"
	chmod 0755 "$xroot/usr/lib/pantavisor/examples/$xname/$xname"
	if SOURCE_DATE_EPOCH=0 PATH="$bin:$PATH" /usr/bin/python3 "$src/scripts/layercheck/runclass.py" \
		--class "$src/recipes/classes/image-pvrexport.bbclass" \
		--class "$src/recipes/classes/container-pvrexport.bbclass" \
		--class "$src/$ex/pv-example-container.inc" \
		--class "$src/$ex/$xname.bb" \
		--set PN=$xname --set WORKDIR="$tmp/work4" --set IMAGE_ROOTFS="$xroot" \
		--set IMGDEPLOYDIR="$tmp/deploy4" --set IMAGE_NAME="$xname-test" \
		--set libdir=/usr/lib --set bindir=/usr/bin --set sysconfdir=/etc \
		--set PANTAVISOR_FEATURES= \
		--run pv_example_apply_image_conf \
		--run pvrexport_write_manifests --run IMAGE_CMD:pvrexport >"$tmp/class4.log" 2>&1 &&
		/usr/bin/python3 "$src/scripts/layercheck/verify_pvrexport.py" \
			"$tmp/deploy4/$xname.pvrexport.tgz" "$xname" --expect-key "$xname/services.json" \
			--expect-entry /sbin/pv-init >"$tmp/verify4.log" 2>&1 &&
		grep -q '^( /usr/bin/pv-example-dbus-server-start ) &$' "$xroot/sbin/pv-init" &&
		[ -f "$xroot/etc/dbus-1/pv-example-system.conf" ] &&
		[ -x "$xroot/usr/bin/pv-example-dbus-server-start" ] &&
		[ "$(readlink "$xroot/usr/bin/$xname")" = "/usr/lib/pantavisor/examples/$xname/$xname" ]
	then
		ok "example recipe: image.conf FILES/BINS in the rootfs, INIT under /sbin/pv-init"
	else
		sed 's/^/     /' "$tmp/class4.log" "$tmp/verify4.log" 2>/dev/null || true
		bad "example recipe $xname: image.conf not applied or pvrexport wrong"
	fi

	# ---- 3b. the Yocto recipe and the local image builder make the same container ----
	yname="pv-example-unix-client"
	yroot="$tmp/yrootfs"
	mkdir -p "$yroot/usr/lib/pantavisor/examples" "$tmp/fakebin"
	cp -a "$src/examples/$yname" "$yroot/usr/lib/pantavisor/examples/"
	printf '#!/bin/sh\n' >"$yroot/usr/lib/pantavisor/examples/$yname/$yname"
	chmod 0755 "$yroot/usr/lib/pantavisor/examples/$yname/$yname"
	cp "$yroot/usr/lib/pantavisor/examples/$yname/$yname" "$tmp/fakebin/$yname"
	init=$(sh -c '. "$1"; printf %s "$INIT"' sh "$src/examples/$yname/image.conf")
	if ! SOURCE_DATE_EPOCH=0 PATH="$bin:$PATH" /usr/bin/python3 "$src/scripts/layercheck/runclass.py" \
		--class "$src/recipes/classes/image-pvrexport.bbclass" \
		--class "$src/recipes/classes/container-pvrexport.bbclass" \
		--class "$src/$ex/pv-example-container.inc" --class "$src/$ex/$yname.bb" \
		--set PN=$yname --set WORKDIR="$tmp/work5" --set IMAGE_ROOTFS="$yroot" \
		--set IMGDEPLOYDIR="$tmp/deploy5" --set IMAGE_NAME="$yname-test" \
		--set libdir=/usr/lib --set bindir=/usr/bin --set PANTAVISOR_FEATURES= \
		--run pv_example_apply_image_conf --run pvrexport_write_manifests \
		--run IMAGE_CMD:pvrexport >"$tmp/class5.log" 2>&1; then
		sed 's/^/     /' "$tmp/class5.log"
		bad "example recipe $yname failed"
	elif [ ! -x "$bin/pv-mkimage" ]; then
		bad "pv-mkimage is not in $bin; cannot compare with the local image builder"
	elif ! PV_BUSYBOX=${PV_BUSYBOX:-/bin/busybox} "$bin/pv-mkimage" --name "$yname" --out "$tmp/mk" \
		--init "$init" --bin "$tmp/fakebin/$yname" \
		--run-json-extra "$(cat "$src/examples/$yname/run.json")" >"$tmp/mk.log" 2>&1 ||
		! PATH="$bin:$PATH" pv-mkexport "$yname" "$tmp/mk" "$tmp/mk.pvrexport.tgz" >>"$tmp/mk.log" 2>&1; then
		sed 's/^/     /' "$tmp/mk.log"
		bad "pv-mkimage/pv-mkexport of $yname failed"
	else
		yout="$tmp/deploy5/$yname.pvrexport.tgz"
		key="$yname/run.json"
		tar -xzOf "$yout" json | jq -S --arg k "$key" '.[$k]' >"$tmp/run.yocto"
		tar -xzOf "$tmp/mk.pvrexport.tgz" json | jq -S --arg k "$key" '.[$k]' >"$tmp/run.local"
		grep -v '^lxc.apparmor' "$tmp/mk/lxc.container.conf" >"$tmp/lxc.local"
		tar -xzOf "$yout" json | jq -r --arg k "$yname/lxc.container.conf" '.[$k]' >"$tmp/lxc.sha"
		tar -xzOf "$yout" "objects/$(cat "$tmp/lxc.sha")" >"$tmp/lxc.yocto"
		if ! /usr/bin/python3 "$src/scripts/layercheck/verify_pvrexport.py" "$yout" "$yname" \
			--layout-of "$tmp/mk.pvrexport.tgz" >"$tmp/layout.log" 2>&1; then
			sed 's/^/     /' "$tmp/layout.log"
			bad "Yocto and local pvrexports of $yname differ in layout"
		elif ! diff -u "$tmp/run.local" "$tmp/run.yocto" >"$tmp/run.diff"; then
			sed 's/^/     /' "$tmp/run.diff"
			bad "Yocto and local run.json of $yname differ"
		elif ! diff -u "$tmp/lxc.local" "$tmp/lxc.yocto" >"$tmp/lxc.diff"; then
			sed 's/^/     /' "$tmp/lxc.diff"
			bad "Yocto and local lxc.container.conf of $yname differ"
		elif ! cmp -s "$tmp/mk/rootfs/sbin/pv-init" "$yroot/sbin/pv-init"; then
			diff -u "$tmp/mk/rootfs/sbin/pv-init" "$yroot/sbin/pv-init" | sed 's/^/     /'
			bad "Yocto and local /sbin/pv-init of $yname differ"
		else
			ok "$yname: Yocto recipe = local image builder (layout, run.json, lxc.container.conf, pv-init)"
		fi
	fi
fi

# ---- 4. the recipes' package split covers what `cmake --install` of this build installs ----
builddir=$(cd "$bin/.." && pwd)
if [ ! -f "$builddir/CMakeCache.txt" ]; then
	bad "no CMake build at $builddir to install from"
elif ! DESTDIR="$tmp/inst" cmake --install "$builddir" >"$tmp/install.log" 2>&1; then
	sed 's/^/     /' "$tmp/install.log"
	bad "cmake --install of $builddir failed"
else
	set --
	for e in /usr/bin/pantavisor=pantavisor /usr/libexec/pantavisor/pv-engine=pantavisor \
		/usr/libexec/pantavisor/pv-ctrl=pv-ctrl /usr/bin/pvcontrol=pv-ctrl /usr/bin/pvcurl=pv-ctrl \
		/usr/libexec/pantavisor/pv-xconnect=pv-xconnect /usr/bin/pvstate=pantavisor-tools \
		/usr/bin/pvtx=pantavisor-tools /usr/bin/pventer=pantavisor-tools \
		/usr/bin/pv-mkexport=pantavisor-tools /usr/bin/pv-mkimage=pantavisor-tools \
		/usr/bin/pv-appengine=pantavisor-appengine /usr/lib/libpvstate.so.0=libpvstate \
		/usr/lib/libpvstate.so=pantavisor-dev /usr/include/pvstate/state.h=pantavisor-dev \
		/usr/lib/pantavisor/examples/pv-example-unix-server/pv-example-unix-server=pantavisor-examples-unix-server \
		/usr/lib/pantavisor/examples/pv-example-dbus-server/image.conf=pantavisor-examples-dbus-server; do
		# only what this build installs (components may be switched off)
		set -- "$@" --expect-if-installed "$e"
	done
	# install with the build's own prefix (absolute paths such as PV_LIBEXEC_DIR derive from
	# it); shipcheck maps that prefix to the /usr a Yocto build uses
	prefix=$(sed -n 's/^CMAKE_INSTALL_PREFIX:PATH=//p' "$builddir/CMakeCache.txt")
	if /usr/bin/python3 "$src/scripts/layercheck/shipcheck.py" --destdir "$tmp/inst" \
		--install-prefix "${prefix:-/usr/local}" --layer "$src/recipes" "$@" >"$tmp/ship.log" 2>&1; then
		ok "all $(grep -c '^/' "$tmp/ship.log") installed files are packaged;" \
			"$(sed -n 's/^placements checked: //p' "$tmp/ship.log") placements checked"
	else
		grep PROBLEM "$tmp/ship.log" | sed 's/^/     /'
		bad "the recipes' FILES do not cover the install"
	fi
fi

if [ "$fail" -eq 0 ]; then
	echo "test_layer: all passed"
else
	echo "test_layer: FAILED"
fi
exit "$fail"
