package storage

import (
	"fmt"

	"go.etcd.io/bbolt"
)

// PutRemoteKey caches a remote actor's public key.
func (s *Store) PutRemoteKey(k RemoteKey) error {
	if k.KeyID == "" {
		return fmt.Errorf("storage: put remote key: empty key id")
	}
	err := s.update(func(tx *bbolt.Tx) error {
		return putJSON(tx.Bucket(bucketRemoteKeys), []byte(k.KeyID), k)
	})
	s.remoteKeys.forget(k.KeyID)
	if err != nil {
		return fmt.Errorf("storage: put remote key: %w", err)
	}
	return nil
}

// RemoteKey returns a cached key, or ErrNotFound.
func (s *Store) RemoteKey(keyID string) (RemoteKey, error) {
	if k, ok := s.remoteKeys.get(keyID); ok {
		return k, nil
	}
	gen := s.remoteKeys.begin()
	var k RemoteKey
	err := s.db.View(func(tx *bbolt.Tx) error {
		found, err := getJSON(tx.Bucket(bucketRemoteKeys), []byte(keyID), &k)
		if err == nil && !found {
			err = ErrNotFound
		}
		return err
	})
	if err != nil {
		return RemoteKey{}, fmt.Errorf("storage: get remote key %s: %w", keyID, err)
	}
	s.remoteKeys.put(gen, keyID, k)
	return k, nil
}

// DeleteRemoteKey forgets a cached key; deleting an unknown key is not an
// error.
func (s *Store) DeleteRemoteKey(keyID string) error {
	err := s.db.Update(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketRemoteKeys).Delete([]byte(keyID))
	})
	s.remoteKeys.forget(keyID)
	if err != nil {
		return fmt.Errorf("storage: delete remote key: %w", err)
	}
	return nil
}

// deleteRemoteKeysWhere removes the cached keys for which drop is true and
// returns how many. Its caller forgets every memoised key afterwards.
func deleteRemoteKeysWhere(tx *bbolt.Tx, drop func(RemoteKey) bool) (int, error) {
	keys := tx.Bucket(bucketRemoteKeys)
	var doomed [][]byte
	err := keys.ForEach(func(k, v []byte) error {
		var rk RemoteKey
		if err := decode(v, &rk); err != nil {
			return fmt.Errorf("remote key %q: %w", k, err)
		}
		if drop(rk) {
			doomed = append(doomed, append([]byte(nil), k...))
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	for _, k := range doomed {
		if err := keys.Delete(k); err != nil {
			return 0, err
		}
	}
	return len(doomed), nil
}
