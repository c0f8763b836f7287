# The project image: every mdgw process (gateway, api, simulate, topics, ...).
#   docker build -t mdgw .        docker run --rm mdgw gateway --help
# Configuration comes from MDGW_<SECTION>_<FIELD> variables (README:
# Configuration) and OTEL_* for tracing; see docker-compose.yml.

# The compiled hot path (native/, Rust) is built with the toolchain of the official
# Rust image; the runtime image carries only its wheel's shared object.
FROM rust:1-slim AS rust

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    RUSTUP_HOME=/usr/local/rustup CARGO_HOME=/usr/local/cargo \
    PATH=/usr/local/cargo/bin:$PATH
COPY --from=rust /usr/local/rustup /usr/local/rustup
COPY --from=rust /usr/local/cargo /usr/local/cargo
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/mdgw
COPY . /src
RUN /opt/mdgw/bin/pip install /src
RUN /opt/mdgw/bin/pip install /src/native

FROM python:3.11-slim
ENV PATH=/opt/mdgw/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MDGW_GATEWAY_HOST=0.0.0.0 \
    MDGW_API_HOST=0.0.0.0
COPY --from=build /opt/mdgw /opt/mdgw
RUN useradd --system --uid 10001 --no-create-home mdgw
USER mdgw
EXPOSE 8080 8000
ENTRYPOINT ["mdgw"]
CMD ["--help"]
