# The size yardstick for the relay image: what the Python relay's image
# needed (interpreter, Flask, gunicorn, the Prometheus client) on the same
# Debian base, built here because python:3.12-slim cannot be pulled on the
# CI machines. Debian's python3 is 3.11; the packages are Debian's.
# tests/image/test_image.py builds it and checks the relay image is at most
# a fifth of its size.
FROM debian:bookworm-slim
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      python3 python3-flask gunicorn python3-prometheus-client \
 && rm -rf /var/lib/apt/lists/*
RUN printf '%s\n' 'from flask import Flask' 'app = Flask(__name__)' \
      '@app.get("/livez")' 'def livez():' '    return {"status": "alive"}' \
      > /srv/relay.py
USER 65532:65532
ENV RELAY_PORT=5010
EXPOSE 5010
CMD ["gunicorn", "--chdir", "/srv", "--bind", "0.0.0.0:5010", "relay:app"]
