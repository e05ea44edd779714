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
# Runs as a non-root user and writes nothing: fine with a read-only root filesystem.
USER 10001:10001
EXPOSE 9813
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9813/healthz', timeout=2)"]
ENTRYPOINT ["cdnprobe"]
CMD ["run", "--config", "/etc/cdnprobe/config.yaml"]
