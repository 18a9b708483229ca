# syntax=docker/dockerfile:1
# Build: the same script CI runs, producing static binaries.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN ./scripts/build /out

# Run: a small static image, as a non-root user.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/aggregator /out/publisher /usr/local/bin/
USER nonroot:nonroot
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/aggregator"]
