# tokenplace-relay container image (linux/amd64 and linux/arm64).
#
# Stage "build" compiles the relay on Debian 12 with the same packages the
# project builds with everywhere else, then gathers the binary and exactly
# the shared libraries it loads (as ldd resolves them) into /rootfs. The
# runtime stage is that tree on an empty base: no shell, no package manager,
# nothing writable needed, a numeric non-root user.
#
#   podman build --pull=never -t localhost/tokenplace-relay:dev .
#   docker buildx build --platform linux/amd64,linux/arm64 -t IMAGE .
#
# Without registry access (the project's CI machines), tests/image/base-image.sh
# provides debian:bookworm-slim from a debootstrap tarball.

ARG DEBIAN_IMAGE=debian:bookworm-slim

FROM ${DEBIAN_IMAGE} AS build
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      ca-certificates cmake gcc libc6-dev make pkg-config \
      libcivetweb-dev libcjson-dev libcurl4-openssl-dev libhiredis-dev \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY CMakeLists.txt CMakePresets.json ./
COPY cmake/ cmake/
COPY shared/ shared/
COPY relay/ relay/

# The context has no .git; the revision comes in as a build argument.
ARG REVISION=unknown
RUN TP_REVISION="$(printf '%.7s' "$REVISION")" \
      cmake -S . -B /build -DCMAKE_BUILD_TYPE=Release -DTP_WERROR=ON \
        -DTP_BUILD_GPUHOST=OFF -DTP_BUILD_TESTS=OFF \
 && cmake --build /build -j "$(nproc)" --target tokenplace-relay \
 && strip /build/relay/tokenplace-relay

# /rootfs = the binary, its shared libraries and the dynamic loader at the
# paths ldd reports, libcurl and its libraries (the relay dlopen()s it on
# the first forwarded request, so ldd of the binary does not list it), the
# CA bundle for https:// upstreams, and an account entry so the numeric
# user has a name in logs and `id`.
RUN set -eu; \
    mkdir -p /rootfs/usr/local/bin /rootfs/etc/ssl/certs; \
    cp /build/relay/tokenplace-relay /rootfs/usr/local/bin/; \
    curl_lib="$(ldconfig -p | awk '$1 == "libcurl.so.4" { print $NF; exit }')"; \
    test -n "$curl_lib"; \
    { ldd /build/relay/tokenplace-relay; echo "libcurl.so.4 => $curl_lib (0)"; \
      ldd "$curl_lib"; } \
      | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' \
      | sort -u > /tmp/libs; \
    test -s /tmp/libs; \
    while read -r lib; do cp -L --parents "$lib" /rootfs; done < /tmp/libs; \
    cp /etc/ssl/certs/ca-certificates.crt /rootfs/etc/ssl/certs/; \
    echo 'relay:x:65532:65532:tokenplace-relay:/nonexistent:/sbin/nologin' > /rootfs/etc/passwd; \
    echo 'relay:x:65532:' > /rootfs/etc/group; \
    echo 'hosts: files dns' > /rootfs/etc/nsswitch.conf; \
    /rootfs/usr/local/bin/tokenplace-relay --version

FROM scratch
ARG VERSION=dev
ARG REVISION=unknown
ARG SOURCE=https://github.com/tokenplace/tokenplace-relay
COPY --from=build /rootfs/ /
LABEL org.opencontainers.image.title="tokenplace-relay" \
      org.opencontainers.image.description="token.place relay (C, civetweb) for k3s clusters" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.version="${VERSION}"
ENV RELAY_HOST=0.0.0.0 \
    RELAY_PORT=5010
USER 65532:65532
EXPOSE 5010
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/tokenplace-relay"]
