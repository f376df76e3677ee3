# The STS as a container image: built in a Rust image, run in a slim Debian image with only the runtime
# libraries samael needs (libxml2, libxslt, libxmlsec1 with its OpenSSL backend, libssl) and the CA list.
# Build:  podman build -t sts .   (or docker build)
# Run:    podman run --rm -p 19090:19090 -e STS_PUBLIC_URL=http://127.0.0.1:19090 sts
# The image runs as uid 10001 with a read-only root filesystem in mind: state goes to /var/lib/sts (a volume),
# configuration to /etc/sts/sts.toml. deploy/helm/sts is the Kubernetes chart; docs/operator-guide.md,
# "Production", the rest.

# Build stage. Debian bookworm, as the runtime stage, so the libraries linked are the ones installed below.
FROM docker.io/library/rust:1.95-slim-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      build-essential pkg-config libssl-dev libxml2-dev libxslt1-dev libxmlsec1-dev libclang-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --locked --release -p sts --bin sts \
 && install -D -m 0755 target/release/sts /out/sts \
 && strip /out/sts

# Runtime stage. tests/tests/packaging.rs checks that every shared library the binary loads comes from one of
# these packages.
FROM docker.io/library/debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      ca-certificates libssl3 libxml2 libxslt1.1 libxmlsec1 libxmlsec1-openssl \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 sts \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/sts --shell /usr/sbin/nologin sts \
 && install -d -o 10001 -g 10001 -m 0700 /var/lib/sts \
 && install -d -m 0755 /etc/sts
COPY --from=build /out/sts /usr/local/bin/sts
USER 10001:10001
WORKDIR /var/lib/sts
# Listen on every interface inside the container; set STS_PUBLIC_URL to the address users reach.
# Relative paths in the configuration (data/sts.db, keys/master.key) resolve under /var/lib/sts.
ENV STS_LISTEN=0.0.0.0:19090
VOLUME ["/var/lib/sts"]
EXPOSE 19090 9464
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/sts"]
CMD ["serve"]
