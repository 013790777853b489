# taskbeat as a container: the one-file build (`make dist`) on a slim Debian base.
# docker build -t taskbeat . && docker run -p 8000:8000 -v taskbeat-data:/data taskbeat

FROM python:3.11-slim-bookworm AS build
# gcc builds the C library and PyInstaller's bootloader (patched: packaging/); binutils
# gives PyInstaller objdump; util-linux has setpriv.
# Debian's versions are not pinned: a pin breaks the build at the next security update.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev binutils make patch util-linux \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN make dist PYTHON=python3

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --home-dir /data --create-home taskbeat
COPY --from=build /src/dist/taskbeat /usr/local/bin/taskbeat
USER 10001
WORKDIR /data
# The SQLite file and the embedded Redis socket (var/redis.sock).
VOLUME ["/data"]
ENV TASKBEAT_HOST=0.0.0.0 \
    TASKBEAT_DATABASE_URL=sqlite:////data/var/taskbeat.db
EXPOSE 8000
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["taskbeat", "health"]
ENTRYPOINT ["taskbeat"]
CMD ["serve"]
