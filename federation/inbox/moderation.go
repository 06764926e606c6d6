package inbox

import (
	"errors"
	"fmt"
	"strings"

	"github.com/crieur/crieur/storage"
)

// Whose replies (and quotes) show under the articles as soon as they
// arrive; the others wait for `crieur replies approve`.
const (
	RepliesEveryone  = "everyone"
	RepliesFollowers = "followers"
	RepliesApproval  = "approval"
)

// arrivalModeration is the moderation state a new reply or quote by
// actorID starts in.
func (s *Inbox) arrivalModeration(actorID string) (string, error) {
	switch s.replies {
	case RepliesApproval:
		return storage.ModerationPending, nil
	case RepliesFollowers:
		f, err := s.store.Follower(actorID)
		switch {
		case err == nil && f.Status == storage.FollowerAccepted:
			return "", nil
		case err == nil, errors.Is(err, storage.ErrNotFound):
			return storage.ModerationPending, nil
		default:
			return "", fmt.Errorf("inbox: moderation of %s: %w", actorID, err)
		}
	}
	return "", nil
}

// maxReportText bounds the comment kept from a report.
const maxReportText = 2000

// inboxFlag records a report (Flag) about our content or our actor for the
// admin (`crieur reports`). A Flag about nothing of ours is ignored.
func (s *Inbox) inboxFlag(doc map[string]any, actorID string) error {
	id := jsonString(doc["id"])
	if id == "" {
		return nil
	}
	var objects []string
	var add func(v any)
	add = func(v any) {
		switch o := v.(type) {
		case []any:
			for _, e := range o {
				add(e)
			}
		default:
			if oid := jsonID(o); oid == s.cfg.ActorID() || strings.HasPrefix(oid, s.cfg.BaseURL+"/") {
				objects = append(objects, oid)
			}
		}
	}
	add(doc["object"])
	if len(objects) == 0 {
		s.log.Debug("inbox: ignored Flag about nothing of ours", "actor", actorID)
		return nil
	}
	text := plainText(jsonString(doc["content"]), maxReportText)
	created, err := s.store.PutReport(storage.Report{ID: id, ActorID: actorID, Objects: objects, Content: text})
	if err != nil {
		return fmt.Errorf("inbox: flag: %w", err)
	}
	if created {
		s.log.Warn("inbox: report received (crieur reports)", "actor", actorID, "objects", len(objects))
	}
	return nil
}
