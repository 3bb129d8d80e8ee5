# A small container image of the mlpolicy CLI: a static musl binary on distroless/static,
# running as the image's non-root user (uid 65532).
#
#   docker build -t mlpolicy --build-arg MLPOLICY_COMMIT=$(git rev-parse --short=12 HEAD) .
#   docker run --rm -v "$PWD:/work" mlpolicy validate /work/examples/contoso-ml
#
# The build context leaves .git out (.dockerignore): MLPOLICY_COMMIT is what `--version` shows.

FROM rust:1-alpine AS build
RUN apk add --no-cache build-base cmake perl
WORKDIR /src
COPY . .
ARG MLPOLICY_COMMIT=unknown
ENV MLPOLICY_COMMIT=${MLPOLICY_COMMIT}
RUN cargo build --release --locked -p mlpolicy --bin mlpolicy \
 && strip target/release/mlpolicy

# distroless/static: CA certificates and /etc/passwd with a `nonroot` user, no shell.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /src/target/release/mlpolicy /usr/local/bin/mlpolicy
USER nonroot:nonroot
WORKDIR /work
ENTRYPOINT ["/usr/local/bin/mlpolicy"]
CMD ["--help"]
