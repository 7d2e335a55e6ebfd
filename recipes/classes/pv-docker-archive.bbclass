# Image type "pv-docker": the OCI image that meta-virtualization's image-oci makes, converted
# by skopeo into a docker archive (docker load -i <image>.pv-docker.tar).

inherit image-oci

IMAGE_TYPES += "pv-docker"
IMAGE_TYPEDEP:pv-docker = "oci"
PV_DOCKER_REPO ??= "${IMAGE_BASENAME}"

do_image_pv_docker[depends] += "skopeo-native:do_populate_sysroot"

IMAGE_CMD:pv-docker () {
	oci="${IMGDEPLOYDIR}/${IMAGE_NAME}${IMAGE_NAME_SUFFIX}-oci"
	out="${IMGDEPLOYDIR}/${IMAGE_NAME}${IMAGE_NAME_SUFFIX}.pv-docker.tar"
	work="${WORKDIR}/pv-docker"
	rm -rf "$work"
	mkdir -p "$work"
	# image-oci may leave only a tarball of the layout directory
	if [ ! -d "$oci" ]; then
		tarball=$(ls "$oci"*.tar | head -n 1)
		tar -C "$work" -xf "$tarball"
		oci=$(ls -d "$work"/*-oci | head -n 1)
	fi
	rm -f "$out"
	skopeo copy "oci:$oci:${OCI_IMAGE_TAG}" "docker-archive:$out:${PV_DOCKER_REPO}:${OCI_IMAGE_TAG}"
}
