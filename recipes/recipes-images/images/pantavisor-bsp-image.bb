SUMMARY = "Pantavisor BSP: kernel, modules, firmware and the pantavisor initramfs"
DESCRIPTION = "What a device boots: the machine's kernel with its modules and firmware, and \
pantavisor-initramfs as the initrd, collected in one tarball for a storage image assembler."
LICENSE = "MIT"
LIC_FILES_CHKSUM = "file://${COMMON_LICENSE_DIR}/MIT;md5=0835ade698e0bcf8506ecda2f7b4f302"

inherit image

IMAGE_INSTALL = "kernel-modules ${MACHINE_EXTRA_RRECOMMENDS}"
IMAGE_FEATURES = ""
IMAGE_LINGUAS = ""
IMAGE_FSTYPES = "tar.gz"

# The BSP needs a real kernel; on a kernel-less machine (docker-x86_64) there is none to ship.
python () {
    if d.getVar('PREFERRED_PROVIDER_virtual/kernel') == 'linux-dummy':
        raise bb.parse.SkipRecipe('a BSP image needs a real kernel (machine uses linux-dummy)')
}

do_rootfs[depends] += "pantavisor-initramfs:do_image_complete virtual/kernel:do_deploy"

# Put the kernel image and the initramfs next to the modules so one tarball holds the BSP.
ROOTFS_POSTPROCESS_COMMAND += "pantavisor_bsp_collect"
pantavisor_bsp_collect () {
	install -d ${IMAGE_ROOTFS}/boot
	install -m 0644 ${DEPLOY_DIR_IMAGE}/${KERNEL_IMAGETYPE} ${IMAGE_ROOTFS}/boot/
	for f in ${DEPLOY_DIR_IMAGE}/pantavisor-initramfs-${MACHINE}.*; do
		case "$f" in
		*.manifest|*.json|*.testdata.json|*.qemuboot.conf) ;;
		*) install -m 0644 "$f" ${IMAGE_ROOTFS}/boot/ ;;
		esac
	done
}
