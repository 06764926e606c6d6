// Command gtscheck is the helper of the GoToSocial interop stage
// (interop/gotosocial/run.sh). It is its own module, outside crieur's
// `go test ./...` and `go vet ./...`, and uses the standard library only.
//
//	gtscheck proxy -listen 127.0.0.3:443 -cert C -key K -to http://127.0.0.1:PORT
//	    TLS in front of crieur; the Host header is passed on unchanged, so
//	    crieur sees its public host when it checks signatures.
//	gtscheck wait -url URL -timeout 120s [-pid PID]
//	    waits until URL answers 200 (bounded; gives up early when PID exits).
//	gtscheck png -out FILE
//	    writes a small PNG (crieur's avatar for the run).
//	gtscheck check [flags]
//	    the checks, through GoToSocial's client API; see checks.go.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: gtscheck proxy|wait|png|check [flags]")
		os.Exit(2)
	}
	var err error
	args := os.Args[2:]
	switch os.Args[1] {
	case "proxy":
		err = runProxy(args)
	case "wait":
		err = runWait(args)
	case "png":
		err = runPNG(args)
	case "check":
		os.Exit(runCheck(args))
	default:
		err = fmt.Errorf("unknown subcommand %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gtscheck:", err)
		os.Exit(1)
	}
}

func runProxy(args []string) error {
	fs := flag.NewFlagSet("proxy", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.3:443", "address to serve TLS on (loopback only)")
	cert := fs.String("cert", "", "certificate chain (PEM)")
	key := fs.String("key", "", "private key (PEM)")
	to := fs.String("to", "", "plain-http backend, e.g. http://127.0.0.1:8080")
	fs.Parse(args)
	backend, err := url.Parse(*to)
	if err != nil || backend.Host == "" {
		return fmt.Errorf("-to: %q is not a URL", *to)
	}
	host, _, err := net.SplitHostPort(*listen)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("-listen: %q is not a loopback address", *listen)
	}
	pair, err := tls.LoadX509KeyPair(*cert, *key)
	if err != nil {
		return err
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(backend)
			r.Out.Host = r.In.Host // the public name, as signed by the sender
			r.SetXForwarded()
		},
		ErrorLog: log.New(os.Stderr, "proxy: ", log.LstdFlags),
	}
	srv := &http.Server{
		Addr:              *listen,
		Handler:           rp,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12},
		ReadHeaderTimeout: 10 * time.Second,
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	fmt.Fprintf(os.Stderr, "proxy: https://%s -> %s\n", *listen, backend)
	if err := srv.ListenAndServeTLS("", ""); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func runWait(args []string) error {
	fs := flag.NewFlagSet("wait", flag.ExitOnError)
	u := fs.String("url", "", "URL that must answer 200")
	timeout := fs.Duration("timeout", 120*time.Second, "give up after this long")
	pid := fs.Int("pid", 0, "give up when this process has exited")
	fs.Parse(args)
	c := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(*timeout)
	var last string
	for time.Now().Before(deadline) {
		resp, err := c.Get(*u)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		if *pid > 0 && syscall.Kill(*pid, 0) != nil {
			return fmt.Errorf("%s: process %d exited (last answer: %s)", *u, *pid, last)
		}
		time.Sleep(500 * time.Millisecond)
	}
	return fmt.Errorf("%s did not answer 200 within %s (last answer: %s)", *u, *timeout, last)
}

func runPNG(args []string) error {
	fs := flag.NewFlagSet("png", flag.ExitOnError)
	out := fs.String("out", "", "file to write")
	fs.Parse(args)
	img := image.NewRGBA(image.Rect(0, 0, 64, 64))
	for y := 0; y < 64; y++ {
		for x := 0; x < 64; x++ {
			img.Set(x, y, color.RGBA{uint8(x * 4), uint8(y * 4), 160, 255})
		}
	}
	f, err := os.Create(*out)
	if err != nil {
		return err
	}
	if err := png.Encode(f, img); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
