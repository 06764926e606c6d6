package storage

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.etcd.io/bbolt"
)

// sameJob compares jobs field by field, times by instant and offset (== on
// time.Time would also compare Location pointers).
func sameJob(a, b Job) bool {
	sameTime := func(x, y time.Time) bool {
		_, ox := x.Zone()
		_, oy := y.Zone()
		return x.Equal(y) && ox == oy
	}
	if !sameTime(a.CreatedAt, b.CreatedAt) || !sameTime(a.NextAttempt, b.NextAttempt) {
		return false
	}
	a.CreatedAt, a.NextAttempt, b.CreatedAt, b.NextAttempt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	return reflect.DeepEqual(a, b)
}

func sampleJobs() []Job {
	paris := time.FixedZone("CET", 3600)
	return []Job{
		{},
		{
			ID: 1, ActivityID: "https://crieur.example/activities/create-1", Inbox: "https://mastodon.example/inbox",
			Host: "mastodon.example", Topic: "https://crieur.example/notes/1", State: JobPending,
			CreatedAt:   time.Date(2026, 3, 10, 9, 0, 0, 123456789, time.UTC),
			NextAttempt: time.Date(2026, 3, 10, 9, 0, 0, 123456789, time.UTC),
		},
		{
			ID: 1<<64 - 1, ActivityID: "a", Inbox: "https://[::1]:8443/users/é/inbox", Host: "[::1]:8443", Topic: "t",
			State: JobFailed, Attempts: 57, LastStatus: 503, LastError: strings.Repeat("timed out: no answer within 30s; ", 40),
			CreatedAt:   time.Date(2026, 12, 6, 23, 59, 59, 999999999, paris),
			NextAttempt: time.Date(2026, 12, 8, 23, 59, 59, 0, paris),
		},
		{ID: 42, Inbox: "https://x.example/inbox", CreatedAt: time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC)},
	}
}

func TestJobRecordRoundTrip(t *testing.T) {
	for i, j := range sampleJobs() {
		got, err := decodeJob(appendJob(nil, j))
		if err != nil {
			t.Fatalf("job %d: %v", i, err)
		}
		if !sameJob(got, j) {
			t.Errorf("job %d round trip:\n got %+v\nwant %+v", i, got, j)
		}
	}
}

// The layout is what files on disk hold: a change to it must be a new
// layout version, not an edit that silently misreads existing queues.
func TestJobRecordGolden(t *testing.T) {
	golden := filepath.Join("testdata", "job_v1.hex")
	got := hex.EncodeToString(appendJob(nil, sampleJobs()[1])) + "\n"
	if os.Getenv("UPDATE_GOLDEN") != "" {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("layout changed:\n got %s\nwant %s", got, want)
	}
	raw, _ := hex.DecodeString(strings.TrimSpace(string(want)))
	j, err := decodeJob(raw)
	if err != nil || !sameJob(j, sampleJobs()[1]) {
		t.Errorf("golden record decodes to %+v, %v", j, err)
	}
}

func TestJobRecordReadsJSON(t *testing.T) {
	for i, j := range sampleJobs() {
		data, err := json.Marshal(j)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeJob(data)
		if err != nil || !sameJob(got, j) {
			t.Errorf("job %d from JSON: %+v, %v", i, got, err)
		}
	}
}

func TestJobRecordRefusesDamage(t *testing.T) {
	good := appendJob(nil, sampleJobs()[2])
	cases := map[string][]byte{
		"empty":          {},
		"unknown layout": append([]byte{0x02}, good[1:]...),
		"trailing bytes": append(append([]byte(nil), good...), 0),
		"bad json":       []byte(`{"ID":`),
		"huge length":    {jobLayoutV1, 1, 0xff, 0xff, 0xff, 0xff, 0x0f},
		"bad time":       {jobLayoutV1, 0, 0, 0, 0, 0, 0, 0, 1, 0xff},
	}
	for cut := 1; cut < len(good); cut += 7 {
		cases[fmt.Sprintf("truncated at %d", cut)] = good[:cut]
	}
	for name, data := range cases {
		if j, err := decodeJob(data); !errors.Is(err, errJobRecord) {
			t.Errorf("%s: decodeJob = %+v, %v; want errJobRecord", name, j, err)
		}
	}
}

// A queue written by a version 2 crieur holds JSON job records: they are
// delivered, retried and completed like new ones, and rewritten in the new
// layout when they change.
func TestQueueWithJSONJobsFromSchema2(t *testing.T) {
	s, clock, path := newTestStore(t)
	a := activity(1, clock.Now(), true)
	if err := s.Enqueue(a, []Job{{Inbox: "https://a.example/inbox"}, {Inbox: "https://b.example/inbox"}}); err != nil {
		t.Fatal(err)
	}
	// Rewrite every record as JSON and mark the file version 2.
	err := s.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketJobs)
		var jobs []Job
		if err := b.ForEach(func(k, v []byte) error {
			j, err := decodeJob(v)
			jobs = append(jobs, j)
			return err
		}); err != nil {
			return err
		}
		for _, j := range jobs {
			if err := putJSON(b, u64(j.ID), j); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketMeta).Put(schemaKey, []byte("2"))
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, path, clock)
	if v, _, _ := s.Meta(string(schemaKey)); v != "3" {
		t.Errorf("schema after open = %q, want 3", v)
	}
	due, err := s.DueJobs(clock.Now(), 0)
	if err != nil || len(due) != 2 || due[0].Inbox != "https://a.example/inbox" || due[0].ActivityID != a.ID {
		t.Fatalf("DueJobs over JSON records = %+v, %v", due, err)
	}
	next := clock.Now().Add(time.Minute)
	if err := s.RetryJob(due[1].ID, next, 503, "busy", true); err != nil {
		t.Fatal(err)
	}
	if err := s.CompleteJob(due[0].ID); err != nil {
		t.Fatal(err)
	}
	err = s.db.View(func(tx *bbolt.Tx) error {
		v := tx.Bucket(bucketJobs).Get(u64(due[1].ID))
		if len(v) == 0 || v[0] != jobLayoutV1 {
			t.Errorf("retried job not rewritten in the binary layout: %q", v)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	left, err := s.PendingJobs()
	if err != nil || len(left) != 1 || left[0].Attempts != 1 || left[0].LastError != "busy" || !left[0].NextAttempt.Equal(next) {
		t.Errorf("pending after retry and complete = %+v, %v", left, err)
	}
	if c, _ := s.DeliveryCounts(a.ID); c != (DeliveryCounts{Delivered: 1, Pending: 1}) {
		t.Errorf("counts %+v", c)
	}
	checkInvariants(t, s)
}

// A file from a newer crieur is refused, untouched, rather than misread.
func TestOpenRefusesNewerSchema(t *testing.T) {
	s, clock, path := newTestStore(t)
	if err := s.db.Update(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(schemaKey, []byte("4"))
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	_, err := Open(path, Options{Now: clock.Now})
	if !errors.Is(err, ErrNewerSchema) || !strings.Contains(err.Error(), "version 4") {
		t.Fatalf("Open of a version 4 file = %v", err)
	}
	db, err := bbolt.Open(path, fileMode, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_ = db.View(func(tx *bbolt.Tx) error {
		if v := tx.Bucket(bucketMeta).Get(schemaKey); string(v) != "4" {
			t.Errorf("schema rewritten to %q", v)
		}
		return nil
	})
}

func FuzzDecodeJob(f *testing.F) {
	for _, j := range sampleJobs() {
		f.Add(appendJob(nil, j))
		data, _ := json.Marshal(j)
		f.Add(data)
	}
	f.Add([]byte{jobLayoutV1})
	f.Fuzz(func(t *testing.T, data []byte) {
		j, err := decodeJob(data)
		if err != nil {
			if !errors.Is(err, errJobRecord) {
				t.Fatalf("error %v does not wrap errJobRecord", err)
			}
			return
		}
		if data[0] == '{' {
			return // JSON may hold values the layout clamps (negative counts)
		}
		// Whatever decodes survives a rewrite.
		again, err := decodeJob(appendJob(nil, j))
		if err != nil || !sameJob(again, j) {
			t.Fatalf("rewrite of %+v gives %+v, %v", j, again, err)
		}
	})
}
