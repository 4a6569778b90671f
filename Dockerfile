# The nodevitals image: one static binary and the empty directories it mounts
# over, FROM scratch (no base image to pull, nothing to patch). Build it with
# scripts/build-image.sh, which builds the binary and stages rootfs/.
FROM scratch
COPY rootfs/ /
# Root, for the root-owned runtime sockets; daemonset.yaml drops every
# capability but the two the restart needs.
USER 0:0
EXPOSE 9811
ENTRYPOINT ["/usr/bin/nodevitals"]
CMD ["--log-format", "json"]
