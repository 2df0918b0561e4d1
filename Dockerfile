# The flow-run image of the onchain-k8s deployment (prefect.yaml). Build and push it yourself:
#   docker build -t registry.example.com/downstream:$(git rev-parse --short HEAD) .
# Prefect and Python here must match prefect==... in requirements.lock and requires-python in
# pyproject.toml (tests/deploy/test_image.py checks it).
FROM prefecthq/prefect:3.9.1-python3.11

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PREFECT_SERVER_ANALYTICS_ENABLED=false \
    DO_NOT_TRACK=1

# Must equal the pull step of prefect.yaml (set_working_directory).
WORKDIR /opt/prefect/downstream

# Dependencies first, exactly as locked, so code changes reuse this layer. The base image
# ships uv; --system installs into its Python, where Prefect is. Nothing is installed
# when a pod starts (EXTRA_PIP_PACKAGES stays unset).
COPY requirements.lock ./
RUN uv pip install --system --no-cache -r requirements.lock

COPY pyproject.toml README.md ./
COPY downstream/ downstream/
COPY blocks/ blocks/
COPY tasks/ tasks/
COPY flows/ flows/
COPY deployments/ deployments/
RUN uv pip install --system --no-cache --no-deps . \
    && python -c "import flows.onchain, blocks.dune"

# Non-root, with a home for PREFECT_HOME (~/.prefect). The UID/GID match runAsUser/fsGroup
# in deployments/k8s-base-job-template.json, so the bronze PVC is writable.
RUN groupadd --gid 10001 downstream \
    && useradd --uid 10001 --gid 10001 --create-home --home-dir /home/downstream downstream \
    && mkdir -p /var/lib/downstream \
    && chown downstream:downstream /var/lib/downstream
USER 10001:10001

# No CMD: the Kubernetes worker runs `prefect flow-run execute` in this image.
