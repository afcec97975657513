# Slim, non-root image for the streamer (and the simulator: same image, other command).
#
#   docker build -t ips-job-streamer .
#   docker run --rm -v $PWD/streamer.toml:/etc/ips-job-streamer/streamer.toml:ro \
#     -e STREAMER_IPS__PASSWORD=... -p 127.0.0.1:8000:8000 ips-job-streamer
#
# The default command runs the daemon with /etc/ips-job-streamer/streamer.toml, which the image
# does not contain: mount your config there (without it the streamer exits 2 naming the file).
# The documented example is in the image at /etc/ips-job-streamer/streamer.example.toml.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY streamer ./streamer
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin streamer
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
COPY config/streamer.example.toml /etc/ips-job-streamer/streamer.example.toml
USER 10001
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status == 200 else 1)"
ENTRYPOINT ["streamer"]
CMD ["run", "--config", "/etc/ips-job-streamer/streamer.toml"]
