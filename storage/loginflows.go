package storage

import (
	"context"
	"encoding/json"
	"time"
)

// CreateLoginFlow inserts a new flow.
func (s *Store) CreateLoginFlow(ctx context.Context, f *LoginFlow) error {
	if f.AMR == nil {
		f.AMR = []string{}
	}
	return mapErr("create login flow", s.conn(ctx).Create(f).Error)
}

// LoginFlow loads a flow that has not expired; ErrNotFound otherwise.
// Completed flows are returned too: the caller tells "already used" from
// "unknown".
func (s *Store) LoginFlow(ctx context.Context, id string) (*LoginFlow, error) {
	var f LoginFlow
	err := s.conn(ctx).Where("id = ? AND expires_at > ?", id, s.now().UTC()).Take(&f).Error
	if err != nil {
		return nil, mapErr("get login flow", err)
	}
	return &f, nil
}

// CompleteLoginFlow marks a pending flow done by userID with the methods
// amr. It is one conditional update, so of any number of parallel
// completions exactly one succeeds; the others get ErrAlreadyUsed.
func (s *Store) CompleteLoginFlow(ctx context.Context, id, userID string, amr []string, at time.Time) error {
	res := s.conn(ctx).Model(&LoginFlow{}).
		Where("id = ? AND completed_at IS NULL AND expires_at > ?", id, s.now().UTC()).
		Updates(map[string]any{"completed_at": at.UTC(), "user_id": userID, "amr": jsonList(amr)})
	if res.Error != nil {
		return mapErr("complete login flow", res.Error)
	}
	if res.RowsAffected == 0 {
		return mapErr("complete login flow", ErrAlreadyUsed)
	}
	return nil
}

// ResumeLoginFlow marks a completed flow as resumed: the request it holds
// is handed back once. ErrAlreadyUsed when it was resumed before or is not
// completed.
func (s *Store) ResumeLoginFlow(ctx context.Context, id string, at time.Time) error {
	res := s.conn(ctx).Model(&LoginFlow{}).
		Where("id = ? AND completed_at IS NOT NULL AND resumed_at IS NULL AND expires_at > ?", id, s.now().UTC()).
		Update("resumed_at", at.UTC())
	if res.Error != nil {
		return mapErr("resume login flow", res.Error)
	}
	if res.RowsAffected == 0 {
		return mapErr("resume login flow", ErrAlreadyUsed)
	}
	return nil
}

// DeleteExpiredLoginFlows removes flows that expired before cutoff.
func (s *Store) DeleteExpiredLoginFlows(ctx context.Context, cutoff time.Time) (int64, error) {
	res := s.conn(ctx).Where("expires_at < ?", cutoff.UTC()).Delete(&LoginFlow{})
	return res.RowsAffected, mapErr("delete expired login flows", res.Error)
}

// jsonList is a string list as its JSON column holds it, for map updates,
// which bypass gorm's serializer.
func jsonList(v []string) string {
	if v == nil {
		v = []string{}
	}
	b, _ := json.Marshal(v) // a []string always marshals
	return string(b)
}
