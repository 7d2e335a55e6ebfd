# Turns an image recipe into a pantavisor container: its only output is the pvrexport tarball
# (image-pvrexport), with the recipe's <name>.args.json / <name>.services.json from SRC_URI.
#
# Use: inherit image container-pvrexport; set PVREXPORT_ENTRYPOINT, PVR_APP_ADD_GROUP,
# IMAGE_INSTALL and SRC_URI += "file://${PN}.services.json file://${PN}.args.json".

inherit image-pvrexport

# A container is its pvrexport; no disk images, no kernel, no locales, no package database.
IMAGE_FSTYPES = "pvrexport"
IMAGE_LINGUAS = ""
IMAGE_FEATURES = ""
ROOTFS_BOOTSTRAP_INSTALL = ""

PVR_APP_ADD_GROUP ??= "app"

# image.bbclass makes every image wait for the kernel (deploy and depmod data); a container
# carries no kernel or modules, so it must not pull a kernel build in.
KERNEL_DEPLOY_DEPEND = ""
KERNELDEPMODDEPEND = ""

# Images skip fetch and unpack; a container needs its manifests from SRC_URI in ${WORKDIR}.
python __anonymous() {
    d.delVarFlag('do_fetch', 'noexec')
    d.delVarFlag('do_unpack', 'noexec')
}
addtask rootfs after do_unpack
