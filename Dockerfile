# syntax=docker/dockerfile:1
#
# Image of the saas backend: one image, three roles chosen by the command
# (`saas serve` = API, `saas worker` = arq worker, `saas migrate` = alembic upgrade head).
#
#   docker build -t registry.example.com/saas/saas:0.1.0 .
#   docker run --rm -p 8000:8000 --env-file prod.env registry.example.com/saas/saas:0.1.0
#
# No secret is baked in: every setting comes from the environment at run time.
# For reproducible builds pin the base image by digest, e.g.
#   --build-arg PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:<digest>

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---------------------------------------------------------------------------
# builder: a virtualenv with the dependencies, then the project's wheel
# ---------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

# pip from ensurepip is enough: `pip wheel` builds in an isolated env with the build
# backend pinned by pyproject.toml's [build-system].
RUN python -m venv "$VIRTUAL_ENV"

WORKDIR /src

# Dependencies first, from pyproject.toml alone, so this layer is cached until they change.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt

# Then the project itself (.dockerignore lets in only pyproject.toml, README.md and the
# packages), built as a wheel and installed without touching the dependencies.
COPY . ./
RUN pip wheel --no-deps --wheel-dir /tmp/wheels . \
    && pip install --no-deps /tmp/wheels/*.whl \
    && pip uninstall -y pip \
    && python -m compileall -q "$VIRTUAL_ENV" \
    && saas --help >/dev/null

# ---------------------------------------------------------------------------
# runtime: the same base image, the virtualenv, an unprivileged numeric user
# ---------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="saas" \
      org.opencontainers.image.description="Multi-tenant GraphQL backend for sales pipelines"

ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    ENVIRONMENT=production \
    HOST=0.0.0.0 \
    PORT=8000

RUN groupadd --system --gid 10001 saas \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin saas

COPY --from=builder /opt/venv /opt/venv

# The code is owned by root and read-only for the app user; only /tmp is writable
# (the chart mounts an emptyDir there and makes the root filesystem read-only).
WORKDIR /tmp
USER 10001:10001

EXPOSE 8000

ENTRYPOINT ["saas"]
CMD ["serve"]
