# syntax=docker/dockerfile:1
# bms-gateway container: build wheels in one stage, install them into a clean slim image.
#   docker build -t bms-gateway .
#   docker run --rm -p 9108:9108 -v ./config.yaml:/config/config.yaml:ro bms-gateway
# Real hardware: pass the devices, e.g. --device /dev/ttyUSB0 (RS-485 to the Logic boards)
# and --network host for SocketCAN (can0 lives in the host's network namespace).
# See docs/deploy.md.

ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim AS build
# Compilers only here, for any dependency without a wheel for this platform (e.g. armv7).
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY gateway ./gateway
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:${PYTHON_VERSION}-slim AS runtime
LABEL org.opencontainers.image.title="bms-gateway" \
      org.opencontainers.image.description="Edge gateway for the BMS Main 2.1 modular BMS"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    BMSGW_METRICS__HOST=0.0.0.0 \
    BMSGW_METRICS__PORT=9108 \
    BMSGW_GATEWAY__STATE_DIR=/data/state
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links /wheels bms-gateway \
    && groupadd --system --gid 10001 bms \
    && useradd --system --uid 10001 --gid bms --groups dialout --home-dir /data \
       --shell /usr/sbin/nologin bms \
    && mkdir -p /config /data/state \
    && chown -R bms:bms /data
COPY deploy/docker/config.yaml /config/config.yaml
COPY deploy/docker/healthcheck.py /usr/local/bin/bms-gateway-healthcheck
USER bms
WORKDIR /data
VOLUME ["/data"]
EXPOSE 9108
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "/usr/local/bin/bms-gateway-healthcheck"]
ENTRYPOINT ["bms-gateway"]
CMD ["run", "/config/config.yaml"]
