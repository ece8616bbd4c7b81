# One image for the gateway, sync and dataset services; compose picks the command.
FROM python:3.11-slim AS build
COPY --from=ghcr.io/astral-sh/uv:0.13 /uv /usr/local/bin/uv
WORKDIR /app
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy
COPY pyproject.toml uv.lock README.md ./
COPY packages ./packages
RUN uv sync --frozen --no-dev --all-packages

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 fabric
WORKDIR /app
COPY --from=build --chown=fabric:fabric /app /app
ENV PATH=/app/.venv/bin:$PATH FABRIC_HOME=/data FABRIC_BIND_HOST=0.0.0.0
RUN mkdir -p /data && chown fabric:fabric /data
USER fabric
EXPOSE 8004 8005 8006
CMD ["fabric-gateway"]
