# pitstop: one image for the gateway (`pitstop serve`), the controller (`pitstop controller`) and the
# schema migration (`pitstop db upgrade`). Deployment manifests: deploy/kubernetes/.
#
#   docker build -t pitstop:0.1.0 .
#   docker run --rm -p 8000:8000 -e PITSTOP_DATABASE_URL=postgresql+psycopg://… pitstop:0.1.0
#
# The build stage compiles nothing of ours but may need a compiler for a dependency without a wheel;
# the final stage has no build tools, runs as an unprivileged user and holds only the virtualenv.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/pitstop
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN /opt/pitstop/bin/pip install --no-compile ".[postgres,kubernetes]" \
    && /opt/pitstop/bin/python -m compileall -q /opt/pitstop/lib

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="pitstop" \
      org.opencontainers.image.description="Replace a production ML model with a freshly trained one, safely" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/pitstop/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PITSTOP_WORKSPACE=/workspace
RUN groupadd --system --gid 10001 pitstop \
    && useradd --system --uid 10001 --gid pitstop --home-dir /workspace --no-create-home pitstop \
    && mkdir -p /workspace/.pitstop \
    && chown -R pitstop:pitstop /workspace
COPY --from=build /opt/pitstop /opt/pitstop
WORKDIR /workspace
USER 10001:10001
EXPOSE 8000
# /healthz answers while the process serves; Kubernetes uses its own probes (deploy/kubernetes).
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status != 200)"]
ENTRYPOINT ["pitstop"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
