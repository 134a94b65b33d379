# optsync container image: a build stage with the -dev packages, a runtime
# stage on debian:bookworm-slim with only the runtime libraries.
# Build: scripts/container.sh (podman), or: podman build -t optsync .

FROM debian:bookworm-slim AS build
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      --no-install-recommends build-essential cmake pkg-config libcurl4-openssl-dev \
      libcjson-dev liblmdb-dev libssl-dev libmicrohttpd-dev libidn2-dev libunistring-dev \
      ca-certificates \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY CMakeLists.txt ./
COPY src ./src
RUN cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DOPTSYNC_WERROR=ON -DOPTSYNC_TESTS=OFF -DOPTSYNC_BENCH=OFF \
    && cmake --build build -j"$(nproc)" --target optsync \
    && strip build/optsync

FROM debian:bookworm-slim
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      --no-install-recommends libcurl4 libcjson1 liblmdb0 libssl3 libmicrohttpd12 \
      libidn2-0 libunistring2 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 optsync \
    && useradd --system --uid 10001 --gid optsync --home-dir /var/lib/optsync \
       --shell /usr/sbin/nologin optsync \
    && install -d -o optsync -g optsync -m 0700 /var/lib/optsync \
    && install -d -o optsync -g optsync -m 0750 /run/optsync
COPY --from=build /src/build/optsync /usr/local/bin/optsync
# shell completion for operators who exec into the container
RUN install -d /usr/share/bash-completion/completions /usr/share/zsh/vendor-completions \
    && /usr/local/bin/optsync completion bash > /usr/share/bash-completion/completions/optsync \
    && /usr/local/bin/optsync completion zsh > /usr/share/zsh/vendor-completions/_optsync
# The ledger lives on a volume; config and secrets are mounted read-only.
# 8425: the local API (keep it on loopback or in the cluster); 8426: the
# public unsubscribe listener ([unsubscribe] listen), behind the ingress.
VOLUME ["/var/lib/optsync"]
ENV OPTSYNC_CONFIG=/etc/optsync/optsync.toml
USER 10001:10001
EXPOSE 8425 8426
STOPSIGNAL SIGTERM
# optsync healthcheck asks api.listen itself (TCP or a unix: socket);
# OPTSYNC_HEALTH_PORT, when set, makes it ask 127.0.0.1 on that port instead
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s \
  CMD ["/usr/local/bin/optsync", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/optsync"]
CMD ["run"]
