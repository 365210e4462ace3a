# Build the jetworker binary on the host (no registry here to pull a Go
# image from) and copy it into a scratch image:
#   CGO_ENABLED=0 go build -o jetworker ./app/jetworker
#   docker build -t jetworker .
# One image runs every role (nats, server, worker, the CLI); see
# docker-compose.yml. No shell and no curl: the health checks run
# `jetworker probe URL`.
FROM scratch
COPY jetworker /jetworker
# scratch has no /tmp, and a worker keeps its container modules under
# os.TempDir() unless worker.containers.dir says otherwise. WORKDIR
# creates the directory (no RUN without a shell).
WORKDIR /tmp
WORKDIR /
ENTRYPOINT ["/jetworker"]
