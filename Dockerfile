# The project image: every mdgw process (gateway, api, simulate, topics, ...).
#   docker build -t mdgw .        docker run --rm mdgw gateway --help
# Configuration comes from MDGW_<SECTION>_<FIELD> variables (README:
# Configuration) and OTEL_* for tracing; see docker-compose.yml.

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/mdgw
COPY . /src
RUN /opt/mdgw/bin/pip install /src

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
