# Build stage: a static binary with the templates, CSS and defaults embedded.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/crieur ./cmd/crieur \
 && mkdir -p /out/data /out/posts \
 && cp posts/*.md /out/posts/

# Final stage: no shell, no package manager, a non-root user (65532).
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build --chown=65532:65532 /out/crieur /usr/local/bin/crieur
COPY --from=build --chown=65532:65532 /out/posts /posts
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
ENV CRIEUR_LISTEN=:8080 \
    CRIEUR_POSTS=/posts \
    CRIEUR_DATA=/data
VOLUME ["/posts", "/data"]
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/crieur"]
CMD ["serve"]
