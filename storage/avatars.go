package storage

import (
	"errors"
	"fmt"
	"time"

	"go.etcd.io/bbolt"
)

// Avatar is what crieur knows of one remote avatar: fetched and kept (its
// bytes beside, in their own bucket, so listing or checking one never reads
// an image), or refused, with why and when, so it is not asked for again
// at every page view.
type Avatar struct {
	URL         string    // the avatar's URL on its server
	ContentType string    `json:",omitempty"` // image/png, image/jpeg, image/gif or image/webp
	Size        int       `json:",omitempty"`
	FetchedAt   time.Time // when it was fetched, or refused
	// Refused says why the avatar was not kept (too large, not an image,
	// a private address, an error); empty when it was.
	Refused string `json:",omitempty"`
}

// PutAvatar stores what was fetched for key: the record and the image's
// bytes (none when refused), in one transaction, replacing any earlier.
func (s *Store) PutAvatar(key string, a Avatar, body []byte) error {
	if key == "" {
		return errors.New("storage: put avatar: empty key")
	}
	a.Size = len(body)
	err := s.update(func(tx *bbolt.Tx) error {
		if err := putJSON(tx.Bucket(bucketAvatars), []byte(key), a); err != nil {
			return err
		}
		if len(body) == 0 {
			return tx.Bucket(bucketAvatarBytes).Delete([]byte(key))
		}
		return tx.Bucket(bucketAvatarBytes).Put([]byte(key), body)
	})
	if err != nil {
		return fmt.Errorf("storage: put avatar %s: %w", key, err)
	}
	return nil
}

// AvatarInfo returns the record of key without the image, or ErrNotFound.
func (s *Store) AvatarInfo(key string) (Avatar, error) {
	var a Avatar
	err := s.db.View(func(tx *bbolt.Tx) error {
		found, err := getJSON(tx.Bucket(bucketAvatars), []byte(key), &a)
		if err == nil && !found {
			err = ErrNotFound
		}
		return err
	})
	if err != nil {
		return Avatar{}, fmt.Errorf("storage: avatar %s: %w", key, err)
	}
	return a, nil
}

// AvatarImage returns a kept avatar and its bytes; ErrNotFound when there
// is none or it was refused.
func (s *Store) AvatarImage(key string) (Avatar, []byte, error) {
	var a Avatar
	var body []byte
	err := s.db.View(func(tx *bbolt.Tx) error {
		found, err := getJSON(tx.Bucket(bucketAvatars), []byte(key), &a)
		if err != nil {
			return err
		}
		v := tx.Bucket(bucketAvatarBytes).Get([]byte(key))
		if !found || a.Refused != "" || v == nil {
			return ErrNotFound
		}
		// bbolt's slice is valid only inside the transaction.
		body = append([]byte(nil), v...)
		return nil
	})
	if err != nil {
		return Avatar{}, nil, fmt.Errorf("storage: avatar image %s: %w", key, err)
	}
	return a, body, nil
}
