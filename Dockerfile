# poembot image: one image, the role chosen by the command (bot | worker | run).
# CPU by default; `--build-arg VARIANT=gpu` installs tensorflow[and-cuda] for the worker on a GPU host.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ARG VARIANT=cpu
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md poembot_cli.py ./
COPY bot ./bot
COPY model ./model
COPY search ./search
COPY corpus ./corpus
COPY run ./run
COPY training ./training
COPY reading ./reading
COPY protocol ./protocol
COPY worker ./worker
COPY devtools ./devtools
COPY verse ./verse
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --upgrade pip==25.3 \
    && if [ "$VARIANT" = "gpu" ]; then extra=gpu; else extra=model; fi \
    && /opt/venv/bin/pip install ".[${extra}]"

# The latent index holds corpus text, so it is built here from the downloaded corpus, never committed.
# `index build` also writes the theme index beside it: the worker's theme prior needs no corpus.
FROM build AS index
ENV POEMBOT_DATA_DIR=/build-data POEMBOT_FONT_DIR=/fonts PATH=/opt/venv/bin:$PATH
# The card fonts come from npm and Debian (checksum-verified) while apt's lists are here.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends nodejs npm \
    && poembot font fetch \
    && rm -rf /var/lib/apt/lists/*
# The novelty table (hashes of corpus lines) goes into the installed model folder of this venv.
RUN poembot corpus fetch \
    && poembot corpus build \
    && poembot index build --out /index \
    && python -c "import model.decode as d, protocol.paths as p; d.load_novelty(p.PRETRAINED_DIR, d._try_corpus()).save(p.PRETRAINED_DIR / d.NOVELTY_FILE)" \
    && rm -rf /build-data/download

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="poembot" \
      org.opencontainers.image.licenses="MIT"
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin poembot \
    && mkdir -p /data && chown poembot /data
COPY --from=index /opt/venv /opt/venv
COPY --from=index /index /opt/poembot/index
COPY --from=index /build-data/corpus/vocab.json /opt/poembot/corpus/vocab.json
COPY --from=index /fonts /opt/poembot/fonts
COPY docker/entrypoint.sh /usr/local/bin/poembot-entrypoint
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    POEMBOT_DATA_DIR=/data \
    POEMBOT_INDEX_PATH=/opt/poembot/index \
    POEMBOT_FONT_DIR=/opt/poembot/fonts \
    POEMBOT_LOG_FORMAT=json \
    POEMBOT_METRICS_PORT=9100
USER 10001
WORKDIR /home/poembot
VOLUME ["/data"]
EXPOSE 8443 9100
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["poembot-entrypoint", "health"]
ENTRYPOINT ["poembot-entrypoint"]
CMD ["bot"]
