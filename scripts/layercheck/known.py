# What the layer lint may assume exists outside our layer (scarthgap poky, meta-openembedded,
# meta-virtualization, meta-raspberrypi): classes, include files, collections, varflags, machines.
"""Allow-lists for the offline layer check. Add an entry only for something that really exists
upstream in the layers kas/base.yaml pins."""

SERIES = 'scarthgap'

# BBFILE_COLLECTIONS of the layers our kas configs add.
COLLECTIONS = {
    'core', 'yocto', 'yoctobsp', 'openembedded-layer', 'meta-python', 'networking-layer',
    'filesystems-layer', 'virtualization-layer', 'raspberrypi',
}

# Classes from oe-core (classes, classes-global, classes-recipe), meta-oe and meta-virtualization.
CLASSES = {
    # oe-core classes-recipe
    'allarch', 'autotools', 'autotools-brokensep', 'baremetal-image', 'bash-completion',
    'bin_package', 'binconfig', 'binconfig-disabled', 'cargo', 'cargo_common', 'cmake',
    'cmake-qemu', 'cml1', 'compress_doc', 'core-image', 'cpan', 'cross', 'cross-canadian',
    'crosssdk', 'deploy', 'devicetree', 'devupstream', 'externalsrc', 'features_check',
    'fontcache', 'gettext', 'gi-docgen', 'gio-module-cache', 'glide', 'gnomebase',
    'go', 'go-mod', 'goarch', 'gobject-introspection', 'grub-efi', 'gsettings', 'gtk-doc',
    'gtk-icon-cache', 'gtk-immodules-cache', 'image', 'image-artifact-names', 'image-container',
    'image-combined-dbg', 'image-postinst-intercepts', 'image_types', 'image_types_wic',
    'image-live', 'kernel', 'kernel-arch', 'kernel-artifact-names', 'kernel-devicetree',
    'kernel-fitimage', 'kernel-module-split', 'kernel-uboot', 'kernel-yocto', 'kernelsrc',
    'lib_package', 'libc-package', 'linuxloader', 'live-vm-common', 'manpages', 'meson',
    'meta', 'mime', 'mime-xdg', 'module', 'module-base', 'multilib_script', 'native',
    'nativesdk', 'nopackages', 'npm', 'packagegroup', 'perl-version', 'perlnative', 'pixbufcache',
    'pkgconfig', 'populate_sdk', 'populate_sdk_base', 'populate_sdk_ext', 'ptest', 'ptest-cargo',
    'ptest-gnome', 'ptest-perl', 'pypi', 'python3-dir', 'python3native', 'python3targetconfig',
    'python_flit_core', 'python_hatchling', 'python_maturin', 'python_mesonpy',
    'python_pep517', 'python_poetry_core', 'python_pyo3', 'python_setuptools3_rust',
    'python_setuptools_build_meta', 'qemu', 'qemuboot', 'rootfs-postcommands', 'rootfs_deb',
    'rootfs_ipk', 'rootfs_rpm', 'rootfsdebugfiles', 'rust', 'rust-common', 'rust-target-config',
    'scons', 'setuptools3', 'setuptools3-base', 'siteinfo', 'sstate', 'syslinux', 'systemd',
    'systemd-boot', 'systemd-boot-cfg', 'testimage', 'texinfo', 'toolchain-scripts',
    'toolchain-scripts-base', 'uboot-config', 'uboot-extlinux-config', 'uboot-sign',
    'update-alternatives', 'update-rc.d', 'upstream-version-is-even', 'useradd',
    'useradd-staticids', 'vala', 'waf', 'xmlcatalog', 'kernel-yocto', 'license_image',
    'overlayfs', 'overlayfs-etc', 'create-spdx', 'create-spdx-2.2', 'nospdx',
    # oe-core classes-global and classes
    'base', 'buildhistory', 'buildstats', 'debian', 'devshell', 'externalsrc', 'insane',
    'license', 'logging', 'mirrors', 'package', 'package_ipk', 'package_deb', 'package_rpm',
    'packagedata', 'patch', 'rm_work', 'rm_work_and_downloads', 'sanity', 'staging',
    'uninative', 'utility-tasks', 'utils', 'archiver', 'buildhistory', 'chrpath', 'cve-check',
    'extrausers', 'own-mirrors', 'primport', 'report-error', 'spdx-common',
    # meta-oe
    'gitpkgv', 'gitver', 'socorro-syms', 'image_types_sparse', 'systemd-watchdog',
    'capability', 'fitimage',
    # meta-virtualization
    'image-oci', 'container-host', 'cni_networking', 'virt_networking', 'go-osarchmap',
    'meta-virt-cfg', 'meta-virt-container-cfg', 'meta-virt-hosts', 'sanity-meta-virt',
}

# Files a require/include may name that live in other layers (BBPATH-relative).
INCLUDES = {
    'conf/distro/poky.conf',
    'conf/machine/include/x86/tune-corei7.inc',
    'conf/machine/include/x86/tune-core2.inc',
    'conf/machine/include/arm/armv8a/tune-cortexa53.inc',
    'conf/machine/include/qemu.inc',
}

# Task/variable flags BitBake and oe-core understand.
VARFLAGS = {
    'depends', 'rdepends', 'deptask', 'rdeptask', 'recrdeptask', 'recideptask', 'dirs',
    'cleandirs', 'prefuncs', 'postfuncs', 'vardeps', 'vardepsexclude', 'vardepvalue',
    'vardepvalueexclude', 'noexec', 'nostamp', 'fakeroot', 'umask', 'lockfiles', 'network',
    'file-checksums', 'doc', 'stamp-extra-info', 'sstate-inputdirs', 'sstate-outputdirs',
    'sstate-plaindirs', 'sstate-interceptfuncs', 'sstate-fixmedir', 'sstate-lockfile',
    'sstate-lockfile-shared', 'export', 'unexport', 'func', 'python', 'task', 'number_threads',
    'progress', 'subimages', 'imagetype', 'postinsts', 'type', 'filename', 'lineno',
    'dirs', 'nice', 'quieterrors', 'func', 'manifest', 'shellcheck', 'vardepsexclude',
    'reproducible', 'postinst', 'script',
}

# Variables whose flags are free-form names (PACKAGECONFIG[feature] = "...").
FLAG_DICTS = {
    'PACKAGECONFIG', 'ALTERNATIVE_LINK_NAME', 'ALTERNATIVE_TARGET', 'ALTERNATIVE_PRIORITY',
    'LICENSE_FLAGS_DETAILS',
}
FLAG_DICT_PREFIXES = ('ALTERNATIVE_', 'PACKAGECONFIG')

# Machines and distros kas configs may select without a conf file in our layer:
# value -> the kas repo whose layers provide it.
MACHINES = {
    'qemux86-64': 'poky', 'qemux86': 'poky', 'qemuarm': 'poky', 'qemuarm64': 'poky',
    'qemuriscv64': 'poky', 'genericx86-64': 'poky', 'genericarm64': 'poky',
    'beaglebone-yocto': 'poky',
    'raspberrypi-armv8': 'meta-raspberrypi', 'raspberrypi4-64': 'meta-raspberrypi',
    'raspberrypi5': 'meta-raspberrypi', 'raspberrypi3-64': 'meta-raspberrypi',
}
DISTROS = {'poky': 'poky', 'nodistro': 'poky', 'poky-tiny': 'poky'}
# Image/recipe targets kas configs may name that are not in our layer.
TARGETS = {'core-image-minimal', 'core-image-base', 'core-image-weston', 'linux-dummy'}

# Values the lint gives variables when it evaluates ${@...} in PACKAGECONFIG (every feature on).
LINT_VARS = {
    'PANTAVISOR_FEATURES': 'ctrl xconnect tools appengine squash-lz4',
    'DISTRO_FEATURES': 'wayland opengl virtualization x11 systemd',
}
