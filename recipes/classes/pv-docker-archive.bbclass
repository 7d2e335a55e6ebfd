# Image type "pv-docker": the OCI image that meta-virtualization's image-oci makes, converted
# by skopeo into a docker archive (docker load -i <image>.pv-docker).

inherit image-oci

IMAGE_TYPES += "pv-docker"
IMAGE_TYPEDEP:pv-docker = "oci"
PV_DOCKER_REPO ??= "${IMAGE_BASENAME}"

do_image_pv_docker[depends] += "skopeo-native:do_populate_sysroot"

# Output ${IMAGE_NAME}.pv-docker (a docker-archive tar) so that image.bbclass links it as
# ${IMAGE_LINK_NAME}.pv-docker.
IMAGE_CMD:pv-docker () {
	out="${IMGDEPLOYDIR}/${IMAGE_NAME}.pv-docker"
	work="${WORKDIR}/pv-docker"
	rm -rf "$work"
	mkdir -p "$work"
	# image-oci leaves an OCI layout directory and/or a tarball of it next to the image
	oci=""
	for c in "${IMGDEPLOYDIR}/${IMAGE_NAME}"*-oci; do
		[ -d "$c" ] && oci="$c"
	done
	if [ -z "$oci" ]; then
		for t in "${IMGDEPLOYDIR}/${IMAGE_NAME}"*-oci*.tar; do
			[ -f "$t" ] && tar -C "$work" -xf "$t"
		done
		for c in "$work"/*-oci; do
			[ -d "$c" ] && oci="$c"
		done
	fi
	[ -n "$oci" ] || bbfatal "pv-docker: no OCI image of ${IMAGE_NAME} in ${IMGDEPLOYDIR}"
	rm -f "$out"
	skopeo copy "oci:$oci:${OCI_IMAGE_TAG}" "docker-archive:$out:${PV_DOCKER_REPO}:${OCI_IMAGE_TAG}"
}
