# Build the jetworker binary on the host (no registry here to pull a Go
# image from) and copy it into a scratch image:
#   CGO_ENABLED=0 go build -o jetworker ./app/jetworker
#   docker build -t jetworker .
FROM scratch
COPY jetworker /jetworker
ENTRYPOINT ["/jetworker"]
