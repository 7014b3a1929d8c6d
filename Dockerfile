# The gateway image: the gateway (one static binary with the browser files embedded) and
# the demo conference server (cmd/imsdemo), which compose runs from the same image.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -o /out/ ./cmd/gateway ./cmd/imsdemo

FROM debian:bookworm-slim
# curl for the compose healthcheck (GET /readyz).
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends curl \
      && rm -rf /var/lib/apt/lists/* && useradd --system --uid 10001 dsmgw
COPY --from=build /out/gateway /out/imsdemo /usr/local/bin/
USER dsmgw
EXPOSE 8080 5060/udp 5060/tcp
ENTRYPOINT ["/usr/local/bin/gateway"]
