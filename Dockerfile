# syntax=docker/dockerfile:1
# kilo-agent image: `docker build -t kilo-agent .`, then `docker run -p 50051:50051 kilo-agent`.
# Two stages: the first builds the agent's wheel and installs it with its dependencies (all
# published as binary wheels) into a virtualenv; the second is the slim runtime with that
# virtualenv copied in -- no compiler, no pip cache, no source tree.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY agent ./agent
# The same command the tests run: one wheel for the agent itself.
RUN pip wheel . --no-deps -w /wheels
RUN python -m venv /opt/kilo-agent \
 && /opt/kilo-agent/bin/pip install --only-binary=:all: /wheels/kilo_agent-*.whl \
 && /opt/kilo-agent/bin/pip uninstall --yes pip

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="kilo-agent" \
      org.opencontainers.image.description="Outbound-integration agent: rate limits, breakers, retries, credentials and telemetry for third-party API calls, over gRPC." \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/kilo-agent/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
COPY --from=build /opt/kilo-agent /opt/kilo-agent
# Health check through a Unix socket or loopback, for sidecar probes (stdlib only).
COPY --chmod=0755 deploy/docker/kilo-agent-probe /usr/local/bin/kilo-agent-probe
# A numeric non-root user, so Kubernetes can verify runAsNonRoot without a passwd lookup.
USER 65532:65532
WORKDIR /tmp
EXPOSE 50051
ENTRYPOINT ["kilo-agent", "serve"]
CMD ["--listen", "0.0.0.0:50051"]
