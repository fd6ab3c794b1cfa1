# Heimdall's API and worker (docker-compose.yml runs both from this image).
#   docker build -t heimdall .
FROM python:3.11.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# The CPU build of PyTorch first: the default index would pull the multi-GB CUDA build.
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu

WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
# The production extras: Celery/Redis broker, S3/MinIO, PostgreSQL (no MLflow UI, no tests).
RUN pip install '.[server,s3,postgres]'

RUN useradd --create-home --uid 10001 heimdall && mkdir -p /data && chown heimdall /data
USER heimdall
# State (staging, caches) in a volume; numba's and matplotlib's caches where they may write.
ENV HEIMDALL_HOME=/data \
    NUMBA_CACHE_DIR=/data/cache/numba \
    MPLCONFIGDIR=/data/cache/matplotlib
VOLUME ["/data"]
EXPOSE 8002
CMD ["heimdall", "serve", "--host", "0.0.0.0", "--port", "8002"]
