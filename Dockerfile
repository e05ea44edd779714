# syntax=docker/dockerfile:1
# Build the wheel in one stage, install only the wheel in the next: no compiler, no sources.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY prober ./prober
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels . \
    && pip wheel --no-cache-dir --wheel-dir /wheels /wheels/cdnprobe-*.whl

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels cdnprobe \
    && rm -rf /wheels \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin cdnprobe
COPY deploy/cdnprobe.yaml /etc/cdnprobe/config.yaml
COPY deploy/healthcheck.py /usr/local/lib/cdnprobe/healthcheck.py
# Runs as a non-root user and writes nothing: fine with a read-only root filesystem.
USER 10001:10001
EXPOSE 9813
# GET /healthz where the daemon listens: $CDNPROBE_LISTEN if set, else the --listen of its
# command line, else the config's listen; https when --web.config.file has tls_server_config.
# See deploy/healthcheck.py (it cannot present a client certificate: with client_ca_file,
# run the container with --no-healthcheck).
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "/usr/local/lib/cdnprobe/healthcheck.py"]
ENTRYPOINT ["cdnprobe"]
CMD ["run", "--config", "/etc/cdnprobe/config.yaml"]
