# acemux in a container: the static binary, its config and hls.js, nothing
# else (no shell, no libc). Build the image's root first, then the image:
#   make image-root && docker build -t acemux .
# docker-compose.yml (etc/docker/) runs it beside an AceStream engine.
FROM scratch
COPY build/image-root/ /
# nobody: binding port 8000 needs no privilege.
USER 65534:65534
EXPOSE 8000
# The binary asks its own /health (a scratch image has no curl).
HEALTHCHECK --interval=30s --timeout=5s --start-period=5s CMD ["/usr/sbin/acemux", "--health", "127.0.0.1:8000"]
ENTRYPOINT ["/usr/sbin/acemux", "-f", "-c", "/etc/acemux/acemux.toml"]
