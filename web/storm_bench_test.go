package web

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/crieur/crieur/federation/signature"
	"github.com/crieur/crieur/storage"
)

// BenchmarkInboxStorm sends a storm of signed Likes and Announces from 1,000
// servers whose keys crieur has cached (warm keys) to the real handler on
// loopback, while 4 readers load the article's page. It reports the
// interactions stored per second against the rate at which this machine
// verifies RSA-2048 signatures on every CPU, measured in the same run
// (target: at least 70%), and the page's answer times (p50, p99) for
// readers loading it 80 times a second.
//
//	go test -run '^$' -bench InboxStorm -benchtime 3x ./web
func BenchmarkInboxStorm(b *testing.B) {
	const servers, perServer, senders = 1000, 2, 64
	e := newTestEnvDir(b, "testdata/posts", func(c *Config) {})
	if _, err := e.store.Publish(ledgerEntry("hello/en", testNow), activityFor("hello/en"), nil); err != nil {
		b.Fatal(err)
	}
	note := testBase + "/posts/hello/en"
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		b.Fatal(err)
	}
	pemText, _ := signature.PublicKeyPEM(&key.PublicKey)
	actor := func(i int) string { return fmt.Sprintf("https://s%d.example/users/u", i) }
	for i := range servers {
		if err := e.store.PutRemoteKey(storage.RemoteKey{KeyID: actor(i) + "#main-key", Owner: actor(i), PublicKeyPEM: pemText,
			Inbox: actor(i) + "/inbox", Handle: fmt.Sprintf("u@s%d.example", i), FetchedAt: testNow}); err != nil {
			b.Fatal(err)
		}
	}

	// The reference, in the same run: raw RSA-2048 verifications on every
	// CPU, what each inbox request costs at least.
	verifyRate := func() float64 {
		sum := sha256.Sum256([]byte("reference"))
		sig, _ := rsa.SignPKCS1v15(nil, key, crypto.SHA256, sum[:])
		var n atomic.Int64
		deadline := time.Now().Add(time.Second)
		var wg sync.WaitGroup
		start := time.Now()
		for range runtime.GOMAXPROCS(0) {
			wg.Go(func() {
				for time.Now().Before(deadline) {
					if rsa.VerifyPKCS1v15(&key.PublicKey, crypto.SHA256, sum[:], sig) == nil {
						n.Add(1)
					}
				}
			})
		}
		wg.Wait()
		return float64(n.Load()) / time.Since(start).Seconds()
	}

	var stored, ref float64
	var p50, p99 time.Duration
	for iter := 0; b.Loop(); iter++ {
		b.StopTimer()
		// Signed beforehand: the storm measures crieur, not the senders.
		var reqs []*http.Request
		var bodies [][]byte
		for i := range servers {
			signer, err := signature.NewSigner(actor(i)+"#main-key", key, func() time.Time { return testNow })
			if err != nil {
				b.Fatal(err)
			}
			for j := range perServer {
				typ := []string{"Like", "Announce"}[j%2]
				body := fmt.Appendf(nil, `{"@context":"https://www.w3.org/ns/activitystreams","id":"%s/%s/%d-%d","type":%q,"actor":%q,"object":%q}`,
					actor(i), typ, iter, j, typ, actor(i), note)
				req, _ := http.NewRequest(http.MethodPost, e.url+"/inbox", bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/activity+json")
				if err := signer.SignRequest(req, body); err != nil {
					b.Fatal(err)
				}
				reqs, bodies = append(reqs, req), append(bodies, body)
			}
		}
		ref = verifyRate()

		stop := make(chan struct{})
		var mu sync.Mutex
		var lat []time.Duration
		var readers sync.WaitGroup
		// Readers load the page every 50 ms each (80 pages a second in all):
		// the question is whether pages keep answering, not how many a
		// saturated machine renders.
		for range 4 {
			readers.Go(func() {
				tick := time.NewTicker(50 * time.Millisecond)
				defer tick.Stop()
				for {
					select {
					case <-stop:
						return
					case <-tick.C:
					}
					t0 := time.Now()
					resp, err := http.Get(e.url + "/posts/hello/en")
					if err == nil {
						io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
					}
					mu.Lock()
					lat = append(lat, time.Since(t0))
					mu.Unlock()
				}
			})
		}
		// Senders keep their connections, as servers delivering to crieur
		// do (Go's default keeps 2 per host).
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: senders}}
		b.StartTimer()
		start := time.Now()
		var next atomic.Int64
		var failed atomic.Int64
		var wg sync.WaitGroup
		for range senders {
			wg.Go(func() {
				for {
					k := int(next.Add(1) - 1)
					if k >= len(reqs) {
						return
					}
					req := reqs[k]
					req.Body = io.NopCloser(bytes.NewReader(bodies[k]))
					resp, err := client.Do(req)
					if err != nil || resp.StatusCode != http.StatusAccepted {
						failed.Add(1)
					}
					if err == nil {
						io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
					}
				}
			})
		}
		wg.Wait()
		elapsed := time.Since(start)
		b.StopTimer()
		close(stop)
		readers.Wait()
		// Every activity of this run is kept (it replaced the same actor's
		// like and boost of the previous run: one each per actor and Note).
		n := 0
		for i := range servers {
			for j := range perServer {
				typ := []string{"Like", "Announce"}[j%2]
				if _, err := e.store.Interaction(fmt.Sprintf("%s/%s/%d-%d", actor(i), typ, iter, j)); err == nil {
					n++
				}
			}
		}
		if n != servers*2 || failed.Load() != 0 {
			b.Fatalf("%d of %d interactions stored, %d requests refused", n, len(reqs), failed.Load())
		}
		stored = float64(len(reqs)) / elapsed.Seconds()
		slices.Sort(lat)
		if len(lat) > 0 {
			p50, p99 = lat[len(lat)/2], lat[len(lat)*99/100]
		}
		b.StartTimer()
	}
	b.ReportMetric(stored, "stored/s")
	b.ReportMetric(ref, "rsa-verify/s")
	b.ReportMetric(100*stored/ref, "%verify-rate")
	b.ReportMetric(float64(p50.Microseconds())/1000, "page-p50-ms")
	b.ReportMetric(float64(p99.Microseconds())/1000, "page-p99-ms")
}
