# wagate in a container: Debian 12 slim (glibc 2.36; neonize's Go library needs >= 2.34).
#   docker build -t wagate .
#   docker run -d --name wagate -p 127.0.0.1:8080:8080 -v wagate-data:/data wagate
# See docs/operations.md.
FROM python:3.11-slim-bookworm

# libmagic1: MIME sniffing of media (python-magic loads it; neonize imports it too).
# ffmpeg: neonize runs ffmpeg/ffprobe to send audio and video (duration, thumbnail).
RUN apt-get update \
 && apt-get install -y --no-install-recommends libmagic1 ffmpeg \
 && rm -rf /var/lib/apt/lists/*

# A fixed uid/gid so a bind-mounted host directory can be chowned to match (10001:10001).
RUN groupadd --system --gid 10001 wagate \
 && useradd --system --uid 10001 --gid wagate --home-dir /data --no-create-home \
      --shell /usr/sbin/nologin wagate \
 && install -d -o wagate -g wagate -m 0700 /data

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# The pinned versions CI tested; no dev extras. README.md is the package's long description.
WORKDIR /src
COPY constraints.txt pyproject.toml README.md ./
COPY gateway ./gateway
COPY sessions ./sessions
COPY plugins ./plugins
RUN pip install -c constraints.txt . \
 && rm -rf /src

# Environment variables win over a config file (pass one with -e WAGATE_CONFIG=/path).
ENV WAGATE_DATA_DIR=/data \
    WAGATE_HOST=0.0.0.0
WORKDIR /data
VOLUME ["/data"]
USER wagate
EXPOSE 8080

# No curl in the slim image: ask /healthz with Python.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('WAGATE_PORT', '8080'), timeout=4)"]

# wagate is PID 1 and handles SIGTERM itself (drains requests, closes sessions in < 10 s,
# inside `docker stop`'s default 10 s grace period).
CMD ["wagate", "serve"]
