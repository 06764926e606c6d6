package inbox

import (
	"context"
	"errors"
	"fmt"

	"github.com/crieur/crieur/federation"
	"github.com/crieur/crieur/storage"
)

// PendingFollowers lists follow requests waiting for an admin (manual
// approval), oldest first as storage orders them.
func (s *Inbox) PendingFollowers() ([]storage.Follower, error) {
	fs, err := s.store.Followers(storage.FollowerPending)
	if err != nil {
		return nil, fmt.Errorf("inbox: pending followers: %w", err)
	}
	return fs, nil
}

// ApproveFollower accepts a follow request: the follower becomes accepted
// and the Accept is enqueued in the same transaction. Approving an accepted
// follower sends the Accept again (harmless; useful when the first was
// lost). Unknown actor: federation.ErrNotFound.
func (s *Inbox) ApproveFollower(ctx context.Context, actorID string) error {
	f, err := s.store.Follower(actorID)
	if errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("inbox: approve follower %s: %w", actorID, federation.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("inbox: approve follower %s: %w", actorID, err)
	}
	f.Status = storage.FollowerAccepted
	act, jobs, err := s.followReply("Accept", f)
	if err != nil {
		return fmt.Errorf("inbox: approve follower %s: %w", actorID, err)
	}
	if err := s.store.AcceptFollower(f, act, jobs); err != nil {
		return fmt.Errorf("inbox: approve follower %s: %w", actorID, err)
	}
	s.queued()
	s.log.Info("inbox: follower approved", "actor", actorID, "handle", f.Handle, "accept", act.ID)
	return nil
}

// RejectFollower refuses a follow request, or removes an accepted follower
// (Mastodon then unfollows): a Reject of the Follow is enqueued, then the
// follower is deleted. The two steps are two transactions: if the delete
// fails, the Reject is still sent and running the command again finishes the
// job. Unknown actor: federation.ErrNotFound.
func (s *Inbox) RejectFollower(ctx context.Context, actorID string) error {
	f, err := s.store.Follower(actorID)
	if errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("inbox: reject follower %s: %w", actorID, federation.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("inbox: reject follower %s: %w", actorID, err)
	}
	act, jobs, err := s.followReply("Reject", f)
	if err != nil {
		return fmt.Errorf("inbox: reject follower %s: %w", actorID, err)
	}
	err = s.store.RejectFollower(actorID, act, jobs)
	if errors.Is(err, storage.ErrNotFound) {
		// Removed meanwhile (an Undo, or another admin command).
		return fmt.Errorf("inbox: reject follower %s: %w", actorID, federation.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("inbox: reject follower %s: %w", actorID, err)
	}
	s.queued()
	s.log.Info("inbox: follower rejected", "actor", actorID, "handle", f.Handle, "reject", act.ID)
	return nil
}
