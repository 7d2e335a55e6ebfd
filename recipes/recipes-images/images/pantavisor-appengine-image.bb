SUMMARY = "Pantavisor appengine: pantavisor as a docker container on a Linux host"
DESCRIPTION = "pantavisor, pv-appengine, pv-ctrl, pv-xconnect, pvtx and liblxc on a minimal \
rootfs, as a container rootfs tarball, an OCI image and a docker archive (.pv-docker). \
Containers dropped in /usr/lib/pantavisor/pvtx.d are deployed as revision 0 on first start."
LICENSE = "MIT"
LIC_FILES_CHKSUM = "file://${COMMON_LICENSE_DIR}/MIT;md5=0835ade698e0bcf8506ecda2f7b4f302"

inherit image pv-docker-archive

IMAGE_INSTALL = "\
    busybox base-files base-passwd netbase \
    pantavisor pantavisor-appengine pantavisor-tools pv-ctrl pv-xconnect \
    lxc squashfs-tools util-linux-mount util-linux-umount \
"
IMAGE_FEATURES = ""
IMAGE_LINGUAS = ""

# "container" (a rootfs tar without kernel) is only possible on a kernel-less machine such as
# docker-x86_64; image-container skips this recipe on other machines.
IMAGE_FSTYPES = "container oci pv-docker"

OCI_IMAGE_ENTRYPOINT = "${bindir}/pv-appengine"
OCI_IMAGE_TAG = "latest"
PV_DOCKER_REPO = "pantavisor-appengine"

# Containers the appengine deploys on first start: add their recipes here (or in local.conf);
# their pvrexport tarballs are copied into pvtx.d/.
PANTAVISOR_APPENGINE_CONTAINERS ??= ""
do_rootfs[depends] += "${@' '.join(c + ':do_image_complete' for c in (d.getVar('PANTAVISOR_APPENGINE_CONTAINERS') or '').split())}"

ROOTFS_POSTPROCESS_COMMAND += "pantavisor_appengine_pvtxd"
pantavisor_appengine_pvtxd () {
	install -d ${IMAGE_ROOTFS}${prefix}/lib/pantavisor/pvtx.d ${IMAGE_ROOTFS}/var/pantavisor/storage
	for c in ${PANTAVISOR_APPENGINE_CONTAINERS}; do
		install -m 0644 ${DEPLOY_DIR_IMAGE}/$c.pvrexport.tgz ${IMAGE_ROOTFS}${prefix}/lib/pantavisor/pvtx.d/
	done
}
