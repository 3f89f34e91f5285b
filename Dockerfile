# drawer in a container (SPEC section 5):
#
#   docker build -t drawer .
#   docker run --rm --user "$(id -u):$(id -g)" -v "$PWD:/src" -w /src drawer drawer.yaml run
#
# The base is pinned by tag: bookworm keeps the Debian release (and the tini version
# below) fixed, the 3.11 tag follows Python 3.11's patch releases.

FROM python:3.11-slim-bookworm AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /build
# Only what the build reads; every dependency ships a manylinux wheel, so no compiler.
COPY pyproject.toml README.md ./
COPY src/ src/
RUN pip install --no-cache-dir --prefix=/install .


FROM python:3.11-slim-bookworm

ENV PYTHONUNBUFFERED=1

# tini as PID 1: with -g it forwards SIGTERM/SIGINT to drawer's whole process group and
# reaps orphans. bash and coreutils, which drawer's default shell needs, are already in
# the slim image (Debian essential packages), and so is python3 for `shell: python`.
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini=0.19.0-1+b3 \
    && rm -rf /var/lib/apt/lists/*

COPY --from=builder /install /usr/local

# No USER: GitHub runs a Docker action as the image's default user, and requires it to be
# root ("Do not use the USER instruction"). `docker run` by hand passes
# `--user "$(id -u):$(id -g)"` so that .drawer/ in the mounted workspace belongs to the
# caller; drawer needs no passwd entry and no writable HOME for that UID (Docker sets
# HOME=/ for one), only the workspace and /tmp, which the slim image keeps 1777.
WORKDIR /src

ENTRYPOINT ["tini", "-g", "--", "drawer"]
CMD ["--help"]
