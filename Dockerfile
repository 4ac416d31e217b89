# slm-sync: the SLM review sync daemon.
# Build:  docker build -t slm-sync .
# Run:    see README ("Running the container").
ARG BASE_IMAGE=python:3.12-slim

FROM ${BASE_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python3 -m venv /opt/slm-sync
COPY pyproject.toml README.md ./
COPY connectors ./connectors
COPY mapping ./mapping
COPY review ./review
COPY sync ./sync
COPY config ./config
COPY sandbox ./sandbox
RUN /opt/slm-sync/bin/pip install --no-cache-dir --upgrade "pip>=24" \
    && /opt/slm-sync/bin/pip install --no-cache-dir .

FROM ${BASE_IMAGE}
# libmagic1: pysnow imports python-magic, which loads it at import time.
# fonts-wqy-microhei (5 MB: Chinese, Japanese, Korean) and fonts-symbola (3 MB: emoji in
# monochrome) let the attainment chart draw the service names estates hold; matplotlib brings
# DejaVu Sans for Latin, Greek, Cyrillic. Not fonts-noto-cjk (90 MB; the chart uses it when
# present) nor fonts-noto-color-emoji (a colour bitmap font matplotlib cannot draw).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libmagic1 fonts-wqy-microhei fonts-symbola \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home-dir /var/lib/slm-sync --no-create-home slm \
    && mkdir -p /etc/slm-sync /var/lib/slm-sync \
    && chown slm:slm /var/lib/slm-sync
COPY --from=build /opt/slm-sync /opt/slm-sync
COPY config/slm-sync.example.yaml /etc/slm-sync/slm-sync.example.yaml
# SLM_SYNC_SECRETS_DIR is a directory path, not a secret.
# hadolint ignore=DL3064
ENV PATH=/opt/slm-sync/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MPLCONFIGDIR=/tmp/matplotlib \
    SLM_SYNC_SYNC__DATA_DIR=/var/lib/slm-sync \
    SLM_SYNC_SYNC__HTTP_HOST=0.0.0.0 \
    SLM_SYNC_SYNC__HTTP_PORT=8080 \
    SLM_SYNC_SECRETS_DIR=/run/secrets
WORKDIR /var/lib/slm-sync
VOLUME ["/var/lib/slm-sync"]
USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python3", "-c", "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4).status == 200 else 1)"]
ENTRYPOINT ["slm-sync"]
CMD ["run"]
