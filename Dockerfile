# The gateway image: one static binary with the browser files embedded.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -o /out/gateway ./cmd/gateway

FROM debian:bookworm-slim
# curl for the compose healthcheck (GET /readyz).
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends curl \
      && rm -rf /var/lib/apt/lists/* && useradd --system --uid 10001 dsmgw
COPY --from=build /out/gateway /usr/local/bin/gateway
USER dsmgw
EXPOSE 8080 5060/udp 5060/tcp
ENTRYPOINT ["/usr/local/bin/gateway"]
