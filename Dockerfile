# The fluxd image: fluxd and fluxctl, with git, ssh, gpg, kubectl (and its built-in kustomize),
# CA certificates and the known_hosts of GitHub, GitLab, Bitbucket and Azure DevOps; runs as the
# non-root user 10001. `docker build -t flux-rs .` here; without Docker, `scripts/build-image`
# builds the same image (same Debian release, packages and setup script) with buildah.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p examples --example fluxd --example fluxctl

FROM debian:bookworm-slim
COPY scripts/image/ /tmp/image/
RUN apt-get update \
 && xargs -a /tmp/image/packages apt-get install -y --no-install-recommends \
 && sh /tmp/image/setup.sh \
 && rm -rf /tmp/image
COPY --from=build /src/target/release/examples/fluxd /src/target/release/examples/fluxctl /usr/local/bin/
USER 10001:10001
ENV HOME=/home/flux
WORKDIR /home/flux
EXPOSE 3030 3031
ENTRYPOINT ["/usr/local/bin/fluxd"]
