# Build stage: the binary with the templates, CSS and defaults embedded.
# cgo is on so crieur can load OpenSSL's libcrypto.so.3 at run time and sign
# with it (about 2.4 times Go's RSA speed); it links only against glibc.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
# posts/ holds articles only (the code that reads them is in articles/), so
# it is copied whole: page bundles keep their images.
RUN CGO_ENABLED=1 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/crieur ./cmd/crieur \
 && mkdir -p /out/data /out/posts \
 && cp -R posts/. /out/posts/

# Final stage: glibc and libssl3 (libcrypto.so.3), no shell, no package
# manager, a non-root user (65532).
FROM gcr.io/distroless/base-debian12:nonroot
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
