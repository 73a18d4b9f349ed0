# artbandit: one image for the API (gunicorn) and the learner. Redis runs in its own container.
#   docker build -t artbandit .
#   docker run -e ARTBANDIT_REDIS_URL=redis://redis:6379/0 -e ARTBANDIT_API_KEY=... -p 8000:8000 artbandit

# --- build: compilers are needed only here (wheels without a binary for this platform)
FROM python:3.11-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY policies ./policies
COPY service ./service
COPY simulator ./simulator
RUN pip install .

# --- runtime: the virtualenv and an unprivileged user, nothing else
FROM python:3.11-slim
RUN useradd --system --uid 10001 --create-home --home-dir /home/artbandit artbandit
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PROMETHEUS_MULTIPROC_DIR=/tmp/artbandit-metrics
USER artbandit
WORKDIR /home/artbandit
EXPOSE 8000
# exec form: gunicorn's master is PID 1 and gets SIGTERM directly (graceful stop)
CMD ["artbandit", "serve", "--host", "0.0.0.0", "--port", "8000"]
