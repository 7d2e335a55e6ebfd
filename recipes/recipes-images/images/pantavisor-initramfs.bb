SUMMARY = "Initramfs with pantavisor as /init"
DESCRIPTION = "The device's whole host userland: pantavisor (PID 1), its state engine, \
pv-ctrl, pv-xconnect and liblxc. Every other piece of userland runs in containers."
LICENSE = "MIT"
LIC_FILES_CHKSUM = "file://${COMMON_LICENSE_DIR}/MIT;md5=0835ade698e0bcf8506ecda2f7b4f302"

inherit image

# An initramfs installs exactly PACKAGE_INSTALL: no package manager, no locales, no kernel.
PACKAGE_INSTALL = "pantavisor pv-ctrl pv-xconnect lxc busybox base-files base-passwd"
IMAGE_FEATURES = ""
IMAGE_LINGUAS = ""
IMAGE_NAME_SUFFIX ?= ""
IMAGE_FSTYPES = "${INITRAMFS_FSTYPES}"
IMAGE_ROOTFS_SIZE = "8192"
IMAGE_ROOTFS_EXTRA_SPACE = "0"
ROOTFS_BOOTSTRAP_INSTALL = ""
# Pure userland: no dependency on the kernel, so a kernel may bundle this initramfs later.
KERNEL_DEPLOY_DEPEND = ""
KERNELDEPMODDEPEND = ""

# The kernel runs /init from an initramfs; make it pantavisor.
ROOTFS_POSTPROCESS_COMMAND += "pantavisor_initramfs_init"
pantavisor_initramfs_init () {
	ln -sf ${bindir}/pantavisor ${IMAGE_ROOTFS}/init
	install -d ${IMAGE_ROOTFS}/storage ${IMAGE_ROOTFS}/volumes ${IMAGE_ROOTFS}/exports
}
