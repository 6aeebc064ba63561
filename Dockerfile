# Multi-stage build: compile shardgate in the Rust image, run it from a slim Debian.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
COPY tests ./tests
RUN cargo build --release --locked --bin shardgate

FROM debian:bookworm-slim
RUN useradd --system --no-create-home shardgate
COPY --from=build /src/target/release/shardgate /usr/local/bin/shardgate
USER shardgate
EXPOSE 6432 9930
ENTRYPOINT ["/usr/local/bin/shardgate"]
CMD ["--config", "/etc/shardgate/shardgate.yaml", "--shardmap", "/etc/shardgate/shardmap.yaml"]
