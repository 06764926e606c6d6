package storage

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"go.etcd.io/bbolt"
)

// benchPendingJobs is the queue size the due-index walk must stay fast at.
const benchPendingJobs = 10_000

// BenchmarkDueJobs asks for 100 due jobs out of 10,000 pending ones.
// "heads": 10,000 chains of one job. "blocked": 2,000 chains whose heads are
// deferred an hour while the 8,000 jobs behind them are due, the worst case
// for the walk (a host down during a Create/Update/Delete series).
func BenchmarkDueJobs(b *testing.B) {
	for _, tc := range []struct {
		name   string
		chains int
		defer_ bool
	}{
		{"heads", benchPendingJobs, false},
		{"blocked", benchPendingJobs / 5, true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			s, clock, _ := newTestStore(b)
			perChain := benchPendingJobs / tc.chains
			for k := range perChain {
				a := activity(k, clock.Now(), true)
				a.ObjectID = "https://b.example/posts/p/en"
				jobs := make([]Job, tc.chains)
				for i := range jobs {
					jobs[i] = Job{Inbox: fmt.Sprintf("https://h%d.example/inbox", i)}
				}
				if err := s.Enqueue(a, jobs); err != nil {
					b.Fatal(err)
				}
			}
			if tc.defer_ {
				heads, err := s.DueJobs(clock.Now(), 0)
				if err != nil {
					b.Fatal(err)
				}
				for _, j := range heads {
					if err := s.RetryJob(j.ID, clock.Now().Add(time.Hour), 503, "down", true); err != nil {
						b.Fatal(err)
					}
				}
			}
			now := clock.Now().Add(time.Minute)
			b.ResetTimer()
			for b.Loop() {
				if _, err := s.DueJobs(now, 100); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkCompleteJobParallel completes jobs from many goroutines, as the
// delivery workers do, through the store's group commit and, for
// comparison, through bbolt's db.Batch (which waits MaxBatchDelay before
// each commit).
func BenchmarkCompleteJobParallel(b *testing.B) {
	for _, mode := range []string{"group", "bbolt-batch"} {
		for _, workers := range []int{16, 64, 256} {
			b.Run(fmt.Sprintf("%s/workers=%d", mode, workers), func(b *testing.B) {
				benchCompleteJobs(b, mode, workers)
			})
		}
	}
}

func benchCompleteJobs(b *testing.B, mode string, workers int) {
	s, clock, _ := newTestStore(b)
	if mode == "bbolt-batch" {
		s.batch = s.db.Batch // what the brief first asked for, for comparison
	}
	a := activity(1, clock.Now(), true)
	const chunk = 10_000
	ids := make(chan uint64, b.N)
	for done := 0; done < b.N; done += chunk {
		jobs := make([]Job, min(chunk, b.N-done))
		for i := range jobs {
			jobs[i] = Job{Inbox: fmt.Sprintf("https://h%d.example/inbox", done+i)}
		}
		if err := s.Enqueue(a, jobs); err != nil {
			b.Fatal(err)
		}
	}
	all, err := s.PendingJobs()
	if err != nil {
		b.Fatal(err)
	}
	for _, j := range all {
		ids <- j.ID
	}
	close(ids)
	// Parallelism is per GOMAXPROCS; workers/GOMAXPROCS rounds down, so
	// set it so at least `workers` goroutines run.
	b.SetParallelism((workers + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := s.CompleteJob(<-ids); err != nil {
				b.Error(err)
			}
		}
	})
}

// BenchmarkPublishFanout publishes one activity with 2,000 jobs in one
// transaction (the 10,000 followers on 2,000 inboxes). "queued":
// into a queue that keeps every earlier fan-out (a backlog that only
// grows); "seeded": into a store holding the 10,000 followers and an empty
// queue, what an article meets in practice.
func BenchmarkPublishFanout(b *testing.B) {
	b.Run("queued", func(b *testing.B) {
		s, clock, _ := newTestStore(b)
		jobs := make([]Job, 2000)
		for i := range jobs {
			jobs[i] = Job{Inbox: fmt.Sprintf("https://h%d.example/inbox", i)}
		}
		i := 0
		for b.Loop() {
			a := activity(i, clock.Now(), true)
			e := LedgerEntry{Key: fmt.Sprintf("p%d/en", i), NoteID: a.ObjectID}
			if _, err := s.Publish(e, a, jobs); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("seeded", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			s := benchFollowerStore(b)
			inboxes, err := s.DeliveryInboxes()
			if err != nil {
				b.Fatal(err)
			}
			jobs := make([]Job, len(inboxes))
			for k, in := range inboxes {
				jobs[k] = Job{Inbox: in}
			}
			a := activity(i, s.now(), true)
			e := LedgerEntry{Key: fmt.Sprintf("p%d/en", i), NoteID: a.ObjectID}
			b.StartTimer()
			if _, err := s.Publish(e, a, jobs); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// benchFollowerStore holds 10,000 accepted followers on 2,000 servers, each
// with a shared inbox: what a publication fans out to.
func benchFollowerStore(b *testing.B) *Store {
	s, clock, _ := newTestStore(b)
	err := s.db.Update(func(tx *bbolt.Tx) error {
		for i := range 10_000 {
			host := i % 2000
			f := Follower{
				ActorID:     fmt.Sprintf("https://h%d.example/users/u%d", host, i),
				Inbox:       fmt.Sprintf("https://h%d.example/users/u%d/inbox", host, i),
				SharedInbox: fmt.Sprintf("https://h%d.example/inbox", host),
				FollowID:    fmt.Sprintf("https://h%d.example/follows/%d", host, i),
				Handle:      fmt.Sprintf("u%d@h%d.example", i, host),
				Host:        fmt.Sprintf("h%d.example", host),
				Status:      FollowerAccepted,
				CreatedAt:   clock.Now().Add(time.Duration(i) * time.Second),
			}
			if err := s.putFollower(tx, f); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return s
}

// BenchmarkDeliveryInboxes reads the publisher's fan-out list from the
// delivery inbox index.
func BenchmarkDeliveryInboxes(b *testing.B) {
	s := benchFollowerStore(b)
	b.ResetTimer()
	for b.Loop() {
		in, err := s.DeliveryInboxes()
		if err != nil || len(in) != 2000 {
			b.Fatalf("%d inboxes, %v", len(in), err)
		}
	}
}

// BenchmarkFollowersAccepted is what the publisher did before the index:
// decode every accepted follower.
func BenchmarkFollowersAccepted(b *testing.B) {
	s := benchFollowerStore(b)
	b.ResetTimer()
	for b.Loop() {
		fs, err := s.Followers(FollowerAccepted)
		if err != nil || len(fs) != 10_000 {
			b.Fatalf("%d followers, %v", len(fs), err)
		}
	}
}
